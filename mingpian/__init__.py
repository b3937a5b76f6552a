"""Mingpian server: composes the renderer, the chatbot and delivery into one aiohttp application."""
