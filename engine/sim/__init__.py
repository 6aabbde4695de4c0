"""One simulated exchange for every simulated venue: the paper broker and the Kite and Upstox
sandboxes all match, fire GTTs and keep holdings here (see docs/execution.md)."""

from engine.sim.exchange import SimulatedExchange, SimulatorError
from engine.sim.matching import MatchingCore
from engine.sim.models import FeeModel, FillModel, NoFees, OrderRateLimit, TurnoverFees, VenueRules
from engine.sim.orders import GttLeg, Holding, LegState, RejectCode, SimFill, SimGtt, SimOrder, TriggerDirection

__all__ = [
    "FeeModel", "FillModel", "GttLeg", "Holding", "LegState", "MatchingCore", "NoFees", "OrderRateLimit",
    "RejectCode", "SimFill", "SimGtt", "SimOrder", "SimulatedExchange", "SimulatorError", "TriggerDirection",
    "TurnoverFees", "VenueRules",
]
