from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response
from psycopg import Connection

from api.db import connection
from api.declarations import service
from api.declarations.schemas import DeclarationPublic, DeclarationPut

router = APIRouter(prefix="/api/v1/declarations", tags=["declarations"])

NumberPath = Annotated[str, Path(description="18-digit 海关编号", max_length=32)]


@router.put("/{number}", response_model=DeclarationPublic)
def put_declaration(
    number: NumberPath,
    body: DeclarationPut,
    response: Response,
    conn: Annotated[Connection, Depends(connection)],
) -> dict:
    """Create or replace a declaration. Sending the same body again changes nothing.

    Every identifier is validated (海关编号, 统一社会信用代码, ISO 6346 container
    numbers). A change re-evaluates the visits of every container it covers.
    """
    changed, version = service.put_declaration(conn, number, body)
    response.status_code = 201 if changed and version == 1 else 200
    return service.get_declaration(conn, number)


@router.get("/{number}", response_model=DeclarationPublic)
def get_declaration(number: NumberPath, conn: Annotated[Connection, Depends(connection)]) -> dict:
    """A declaration with each of its containers: arrived, scanned, exited or missing."""
    return service.get_declaration(conn, number)
