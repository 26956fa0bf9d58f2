from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from psycopg import Connection

from api.containers import service
from api.containers.schemas import ContainerPublic
from api.db import connection

router = APIRouter(prefix="/api/v1/containers", tags=["containers"])


@router.get("/{number}", response_model=ContainerPublic)
def get_container(
    number: Annotated[str, Path(description="ISO 6346 container number", max_length=32)],
    conn: Annotated[Connection, Depends(connection)],
) -> dict:
    """A container's latest visit: where it is, its declaration and its flags."""
    return service.get_container(conn, number)
