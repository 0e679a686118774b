"""HTTP transport of statements: validate, authorize, delegate."""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import Response

from tollgate.billing.statements import service
from tollgate.billing.statements.schemas import Statement
from tollgate.kit.auth import CurrentPrincipal, Role, authorize_org
from tollgate.kit.db import DbSession
from tollgate.kit.problems import documented_problems

router = APIRouter(tags=["statements"])

Month = Annotated[
    str, Path(pattern=r"^(19[7-9][0-9]|2[0-9]{3})-(0[1-9]|1[0-2])$", description="YYYY-MM")
]


@router.get(
    "/orgs/{org_id}/statements/{month}",
    response_model=Statement,
    responses={
        200: {"content": {"text/csv": {}}, "description": "JSON, or CSV with format=csv."},
        **documented_problems(
            {401: "Missing or invalid token.", 404: "Not a member of this organisation."}
        ),
    },
)
async def get_statement(
    org_id: uuid.UUID,
    month: Month,
    principal: CurrentPrincipal,
    db: DbSession,
    format: Annotated[Literal["json", "csv"], Query()] = "json",
) -> Statement | Response:
    """The org's monthly statement: opening balance, top-ups, refunds, adjustments,
    expiries, usage by API and closing balance."""
    authorize_org(principal, org_id, Role.viewer)
    async with db.begin():
        statement = await service.monthly_statement(db, org_id, month)
    if format == "csv":
        return Response(
            service.statement_csv(statement),
            media_type="text/csv; charset=utf-8",
            headers={
                "Content-Disposition": f'attachment; filename="statement-{org_id}-{month}.csv"'
            },
        )
    return statement
