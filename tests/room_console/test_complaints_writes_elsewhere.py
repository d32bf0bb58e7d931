"""The console writes the complaint database only through its service layer (complaints.service): no
module of room_console builds an INSERT, UPDATE or DELETE of a complaints table, or imports a domain
function that writes without its audit row and event."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from complaints.tables import metadata

pytestmark = pytest.mark.unit

CONSOLE = Path(__file__).resolve().parents[2] / "room_console"
TABLES = set(metadata.tables)
# Domain writes that announce nothing themselves: the service layer wraps each of them.
DOMAIN_WRITES = {
    "complaints.cases": {"create_case", "update_case", "add_reception_entry"},
    "complaints.intake": {"record_intake"},
    "complaints.petitions": {"add_petition", "add_respondent"},
    "complaints.petitioners": {"register_petitioner"},
    "complaints.groups": {"record_delegation"},
    "complaints.handling": {"record_handling_decision"},
    "complaints.directives": {"issue_directive", "report_on_directive", "add_unit"},
    "complaints.attachments": {"add_attachment"},
    "complaints.confidentiality": {"enforce_confidentiality", "seal_pending_cases"},
    "complaints.audit": {"append_audit"},
}


def _offences(source: str) -> list[str]:
    tree = ast.parse(source)
    tables: set[str] = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "complaints.tables":
            tables |= {alias.asname or alias.name for alias in node.names if alias.name in TABLES}
        if isinstance(node, ast.ImportFrom) and node.module in DOMAIN_WRITES:
            found += [f"imports {node.module}.{a.name}" for a in node.names if a.name in DOMAIN_WRITES[node.module]]
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        # insert(table) / update(table) / delete(table)
        if isinstance(func, ast.Name) and func.id in {"insert", "update", "delete"} and node.args:
            target = node.args[0]
            if isinstance(target, ast.Name) and target.id in tables:
                found.append(f"{func.id}({target.id}) at line {node.lineno}")
        # table.insert() / table.update() / table.delete()
        if isinstance(func, ast.Attribute) and func.attr in {"insert", "update", "delete"}:
            owner = func.value
            if isinstance(owner, ast.Name) and owner.id in tables:
                found.append(f"{owner.id}.{func.attr}() at line {node.lineno}")
        # raw SQL naming a complaints table
        if isinstance(func, ast.Name) and func.id == "text" and node.args and isinstance(node.args[0], ast.Constant):
            sql = str(node.args[0].value).lower()
            if any(verb in sql for verb in ("insert into", "update ", "delete from")) and any(
                    name in sql for name in TABLES):
                found.append(f"text(...) writing a complaints table at line {node.lineno}")
    return found


def test_the_checker_sees_each_kind_of_write() -> None:
    source = ("from complaints.tables import cases, directives as d\nfrom complaints.cases import update_case\n"
              "from sqlalchemy import insert, text\n"
              "insert(cases)\nd.update()\ntext('DELETE FROM petitions')\n")
    assert len(_offences(source)) == 4
    assert _offences("from complaints.tables import cases\nfrom sqlalchemy import select\nselect(cases)\n") == []


def test_room_console_holds_no_write_to_a_complaints_table() -> None:
    offences = {}
    for path in sorted(CONSOLE.rglob("*.py")):
        found = _offences(path.read_text("utf-8"))
        if found:
            offences[str(path.relative_to(CONSOLE))] = found
    assert offences == {}


def test_the_openapi_schema_describes_what_each_complaint_route_answers() -> None:
    from fastapi import FastAPI

    from room_console.api.complaints import create_complaints_api_router

    app = FastAPI()
    app.include_router(create_complaints_api_router())
    schema = app.openapi()
    answers = {
        ("get", "/api/cases"): "SearchOut", ("get", "/api/cases/{case_id}"): "CaseFileOut",
        ("patch", "/api/cases/{case_id}"): "CaseOut", ("post", "/api/intake"): "IntakeOut",
        ("post", "/api/intake/duplicates"): "DuplicatesOut", ("post", "/api/petitioners"): "IdOut",
        ("post", "/api/cases/{case_id}/receptions"): "ReceptionAddedOut",
        ("post", "/api/cases/{case_id}/directives"): "DirectiveIssuedOut",
        ("get", "/api/directives"): "DirectiveListOut",
        ("post", "/api/directives/{directive_id}/reports"): "DirectiveReportedOut",
        ("post", "/api/petitioners/{petitioner_id}/identity"): "IdentityOut",
        ("post", "/api/petitions/{petition_id}/attachments"): "AttachmentAddedOut",
    }
    for (method, path), model in answers.items():
        responses = schema["paths"][path][method]["responses"]
        ok = responses.get("200") or responses["201"]
        assert ok["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{model}"}, path
    case_file = schema["components"]["schemas"]["CaseFileOut"]["properties"]
    assert {"petitions", "receptions", "directives", "version", "tracking_code"} <= set(case_file)
