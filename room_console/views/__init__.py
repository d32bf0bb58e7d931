"""Server-rendered pages of the complaint database (Vietnamese, no inline script)."""

from fastapi import APIRouter

from .board import router as board_router
from .cases import router as cases_router
from .desk import router as desk_router
from .dossier import router as dossier_router
from .follow_up import router as follow_up_router
from .intake import router as intake_router
from .live import router as live_router
from .minutes import router as minutes_router
from .planning import router as planning_router
from .public import router as public_router
from .venues_admin import router as venues_admin_router

__all__ = ["create_views_router"]


def create_views_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    for sub in (cases_router, intake_router, follow_up_router, public_router, live_router, desk_router,
                board_router, dossier_router, planning_router, venues_admin_router, minutes_router):
        router.include_router(sub)
    return router
