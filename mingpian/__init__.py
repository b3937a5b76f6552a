"""Mingpian server: composes the renderer and the chatbot into one aiohttp application."""
