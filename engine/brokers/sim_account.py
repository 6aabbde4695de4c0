"""What the Kite and Upstox sandboxes know about the account behind them, beyond the order book:
the cash it opened the day with (for the funds endpoints) and the app secret and one-time login
codes (for the token exchange of `autotrader login`). One `SimAccount` per sandbox, kept beside it
(like the Upstox sandbox's holidays), so the sandboxes' own classes stay wire codecs over the book."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.models import Side
from engine.sim import SimFill

# Large enough never to bind the default `capital` (10 lakh): a sandbox run trades as paper does
# unless a test lowers it.
DEFAULT_OPENING_BALANCE = 10_000_000.0
DEFAULT_APP_SECRET = "sandbox_api_secret"


@dataclass
class SimAccount:
    opening_balance: float = DEFAULT_OPENING_BALANCE
    app_secret: str = DEFAULT_APP_SECRET  # Kite's api_secret, Upstox's client_secret
    codes: set[str] = field(default_factory=set)  # login codes issued and not yet exchanged

    def issue_code(self) -> str:
        """A one-time code, as the broker's login page hands back on the redirect."""
        code = secrets.token_urlsafe(16)
        self.codes.add(code)
        return code

    def redeem(self, code: str) -> bool:
        """True once per issued code."""
        if code in self.codes:
            self.codes.discard(code)
            return True
        return False

    @staticmethod
    def day_cash(fills: Iterable[SimFill]) -> tuple[float, float]:
        """(value bought, value sold) by today's fills."""
        bought = sold = 0.0
        for fill in fills:
            if fill.side is Side.BUY:
                bought += fill.quantity * fill.price
            else:
                sold += fill.quantity * fill.price
        return bought, sold

    def available(self, fills: Iterable[SimFill]) -> tuple[float, float, float]:
        """(cash free to trade, debits, credits): the opening balance less today's buys plus today's sales."""
        bought, sold = self.day_cash(fills)
        return self.opening_balance - bought + sold, bought, sold


