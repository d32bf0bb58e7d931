"""The console's JSON APIs (under ``/api``)."""

from .complaints import create_complaints_api_router
from .problems import install_problem_handlers
from .queue import create_queue_api_router
from .roll_call import create_roll_call_api_router
from .sessions import create_sessions_api_router

__all__ = ["create_complaints_api_router", "create_queue_api_router", "create_roll_call_api_router",
           "create_sessions_api_router", "install_problem_handlers"]
