"""SMPP addresses: the digits and the TON/NPI an SMSC reads them with (SMPP 3.4 §5.2.5, §5.2.6).

An SMSC routes by the pair: `13900000101` with TON 1 (international) is read as +1 390 000 0101,
so the digits and the type of number must agree. Every number the delivery domain keeps is
E.164 (`+8613900000101`) or a service code (`95555`, `10086`, `1069…`), and every submit is
numbered here:

- E.164, plan `international`: digits with the country code, TON 1 / NPI 1 (`8613900000101`);
- E.164, plan `national` (the default: Chinese SMSCs address subscribers by their 11 national
  digits): a number of the home country as national digits, TON 2 / NPI 1 (`13900000101`); a
  foreign number still goes international (TON 1), the only way to write it;
- a service code (digits without `+`): TON 3 (network specific) / NPI 0, or TON 0 / NPI 0 where
  the SMSC says so (`service_ton`);
- an alphanumeric sender (letters in it, at most 11 characters): TON 5 / NPI 0.
- no sender (`source`, for a line nobody vouched for without a platform sender): an empty
  `source_addr`, TON 0 / NPI 0, which SMPP 3.4 §5.2.8 leaves to the SMSC (the account's default).

The plan and the service TON are the SMSC account's (settings `delivery_smpp_numbering`,
`delivery_smpp_service_ton`).
"""

from __future__ import annotations

from dataclasses import dataclass

TON_UNKNOWN, TON_INTERNATIONAL, TON_NATIONAL, TON_NETWORK, TON_ALPHANUMERIC = 0, 1, 2, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1
PLANS = ("national", "international")
SERVICE_TONS = (TON_NETWORK, TON_UNKNOWN)
MAX_ALPHANUMERIC = 11  # GSM 03.40 TP-OA: 11 characters in 7-bit


class AddressError(ValueError):
    """A number that cannot be written as an SMPP address."""


@dataclass(frozen=True, slots=True)
class Address:
    digits: str  # what goes in source_addr / destination_addr
    ton: int
    npi: int


@dataclass(frozen=True, slots=True)
class Numbering:
    """An SMSC account's numbering: national or international digits, and the TON of service codes."""

    plan: str = "national"
    service_ton: int = TON_NETWORK
    country: str = "86"

    def __post_init__(self) -> None:
        if self.plan not in PLANS:
            raise AddressError(f"numbering plan must be one of {', '.join(PLANS)}, not {self.plan!r}")
        if self.service_ton not in SERVICE_TONS:
            raise AddressError(f"service code TON must be 3 or 0, not {self.service_ton!r}")

    def source(self, sender: str) -> Address:
        """The source of a submit: `sender` numbered, or "" for the SMSC account's default."""
        return Address("", TON_UNKNOWN, NPI_UNKNOWN) if sender == "" else self.address(sender)

    def address(self, number: str) -> Address:
        """`number` (E.164, a service code or an alphanumeric sender) as an SMPP address."""
        if not number or len(number) > 20:
            raise AddressError(f"{number!r} is not an SMPP address (1 to 20 characters)")
        if number.startswith("+"):
            digits = number[1:]
            if not digits.isdigit():
                raise AddressError(f"{number!r} is not an E.164 number")
            home = "+" + self.country
            if self.plan == "national" and number.startswith(home):
                return Address(number[len(home) :], TON_NATIONAL, NPI_ISDN)
            return Address(digits, TON_INTERNATIONAL, NPI_ISDN)
        if number.isdigit():
            return Address(number, self.service_ton, NPI_UNKNOWN)
        if len(number) > MAX_ALPHANUMERIC or not number.isascii() or not number.isprintable():
            raise AddressError(f"a sender name is at most {MAX_ALPHANUMERIC} ASCII characters: {number!r}")
        return Address(number, TON_ALPHANUMERIC, NPI_UNKNOWN)
