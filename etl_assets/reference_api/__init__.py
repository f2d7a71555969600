"""The reference FX and catalog API server used by the sample run and the tests."""

from etl_assets.reference_api.server import Fault, FaultPlan, ReferenceApiServer

__all__ = ["Fault", "FaultPlan", "ReferenceApiServer"]
