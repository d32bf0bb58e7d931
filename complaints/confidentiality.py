"""Confidentiality of denunciations: the one rule, and where it is applied (LTC Điều 9 k1b, 47, 56;
QĐ 774/QĐ-TTg puts a denouncer's name and address at level "Mật"; domain.md §6, R16).

The rule
    A case is *confidential* when its kind is a denunciation, when any of its petitions is one, or
    when it was marked so (:func:`must_be_confidential`; in SQL :func:`confidential_clause`). Once
    confidential it stays so. In a confidential case every party — whoever they are, new or on file,
    signatory, reception entry or member of a group — is a *sealed handle*: a ``petitioners`` row
    with no identity in clear, its identity sealed in ``identity_vault`` (:mod:`complaints.vault`).

Sealed handles belong to one case
    A handle is referenced by one case only, so two cases never show the same handle (which would
    link them). :func:`enforce_confidentiality` runs after every write that adds a party or changes
    a classification (intake, petitions, reception entries, groups, case edits) and, for each party:

    * an open record that no other case uses is sealed where it stands (identity to the vault, its
      clear columns and duplicate keys removed; id and handle kept);
    * an open record that other cases use stays open for them, and this case gets a new sealed handle
      with a copy of the identity. The open record's id is kept only inside the sealed identity
      (``Identity.linked_to``): nothing shown for either case, found by search or answered by the
      duplicate check links the two;
    * a sealed handle of another case gets a copy for this case, confidential or not.

    Before a new handle is made, the case's own handles are compared by origin
    (:func:`complaints.vault.handle_origin`), so a person keeps one handle per case.

Who may seal
    Recording a denouncer's identity typed in at intake needs ``identity_write``, as it always did
    (:func:`complaints.intake.record_intake`, :func:`complaints.vault.seal_identity`): refused and
    audited otherwise. Sealing what is already on file needs no grant: it discloses nothing and only
    protects, so the secretary re-classifying a case as a denunciation, or a desk officer attaching a
    known citizen's denunciation, seals at once — never an unsealed denouncer waiting for somebody
    with the right grant. Each seal is an audit event (``identity.seal``: the handle and the case,
    never the record it came from); each change of confidentiality too (``case.confidential``), and
    the writer announces it with ``CaseUpdated`` in the same transaction.

Reading
    Every read path asks this module: the case file shows a party of a confidential case by its
    handle to whoever lacks ``identity_read`` (:func:`party_shown`), and hides the names of its
    attachments (:func:`attachment_shown_name`); a confidential case's attachments download only with
    ``identity_read`` (:func:`may_download_attachments`); the search document of a confidential case
    holds no petitioner's name (:mod:`complaints.search`); the duplicate check reports a sealed match
    without a case, code or score to whoever lacks ``identity_read`` (:mod:`complaints.petitioners`).
    Reads use the rule itself, not only the stored flag, so a case written before this rule was
    enforced is read as confidential when a denunciation is in it.

Existing data
    Sealing needs the keyring, so a migration cannot do it: the rule applies to every write from
    now on (the next write to a case seals its parties), cases already confidential keep their sealed
    rows, and reads apply the rule to older rows as said above. Migration 0006 removes petitioners'
    names from the search documents of cases that are confidential by the rule, and
    :func:`seal_pending_cases` (``tiepdan cases seal``) seals the parties of such older cases at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath

from sqlalchemy import ColumnElement, CompoundSelect, delete, exists, or_, select, union, update
from sqlalchemy.ext.asyncio import AsyncConnection

from evidence import Keyring
from signaling.grants import Grant

from . import search
from .audit import append_audit
from .enums import PetitionKind
from .errors import NotFound
from .tables import cases, delegation_members, delegations, petition_parties, petitioners, petitions, reception_entries
from .vault import handle_origin, seal_in_place, sealed_copy

__all__ = ["must_be_confidential", "confidential_clause", "is_confidential", "may_see_identity", "party_shown",
           "attachment_shown_name", "may_download_attachments", "Sealing", "enforce_confidentiality",
           "cases_to_seal", "seal_pending_cases"]

_DENUNCIATION = PetitionKind.DENUNCIATION.value


def must_be_confidential(*, case_kind: PetitionKind | str, petition_kinds: Iterable[PetitionKind | str],
                         marked: bool) -> bool:
    """The rule: marked so, a denunciation case, or a case holding a denunciation."""
    return marked or str(case_kind) == _DENUNCIATION or any(str(kind) == _DENUNCIATION for kind in petition_kinds)


def confidential_clause() -> ColumnElement[bool]:
    """:func:`must_be_confidential` as a condition on the ``cases`` row of the enclosing query."""
    held = petitions.alias("held_petitions")  # the enclosing query may join petitions itself
    holds_denunciation = exists(select(1).select_from(held).where(
        held.c.case_id == cases.c.id, held.c.kind == _DENUNCIATION).correlate_except(held))
    return or_(cases.c.confidential.is_(True), cases.c.kind == _DENUNCIATION, holds_denunciation)


async def is_confidential(conn: AsyncConnection, case_id: str) -> bool:
    """Whether the case is confidential by the rule (False for an unknown case)."""
    found = (await conn.execute(select(confidential_clause()).where(cases.c.id == case_id))).scalar()
    return bool(found)


def may_see_identity(grants: Collection[Grant]) -> bool:
    return Grant.IDENTITY_READ in grants


def party_shown(*, name: str | None, handle: str, sealed: bool, confidential: bool,
                grants: Collection[Grant]) -> tuple[str, bool]:
    """What a reader holding ``grants`` sees of a party: ``(text, shown as a handle)``.

    A sealed party shows its handle to everyone (its identity opens only through the audited
    identity view). An open party of a confidential case — only rows older than this rule — shows
    its handle to whoever lacks ``identity_read``."""
    if sealed or (confidential and not may_see_identity(grants)):
        return handle, True
    return (name or handle), False


def attachment_shown_name(display_name: str, position: int, *, confidential: bool,
                          grants: Collection[Grant]) -> str:
    """The name of the ``position``-th (from 1) attachment of a case as the reader may see it: the
    name a client gave may name the denouncer (LTC Điều 56: strip the identity from the petition and
    its attachments), so a confidential case's files are numbered for whoever lacks ``identity_read``."""
    if not confidential or may_see_identity(grants):
        return display_name
    suffix = PurePosixPath(display_name).suffix
    suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 8 else ""
    return f"Tài liệu mật số {position}{suffix.lower()}"


async def may_download_attachments(conn: AsyncConnection, case_id: str, grants: Collection[Grant]) -> bool:
    """A confidential case's files may show the denouncer (the letter, the handwriting): they need
    ``identity_read``."""
    return may_see_identity(grants) or not await is_confidential(conn, case_id)


@dataclass(frozen=True)
class Sealing:
    """What :func:`enforce_confidentiality` did: whether the case became confidential now, and how
    many of its party records were sealed or replaced by a sealed handle."""

    became_confidential: bool = False
    sealed: int = 0


def _references(case_id: str) -> CompoundSelect[tuple[str]]:
    """The petitioners a case refers to: parties of its petitions, its reception entries, its groups."""
    return union(
        select(petition_parties.c.petitioner_id.label("pid"))
        .join(petitions, petitions.c.id == petition_parties.c.petition_id).where(petitions.c.case_id == case_id),
        select(reception_entries.c.petitioner_id.label("pid"))
        .where(reception_entries.c.case_id == case_id, reception_entries.c.petitioner_id.is_not(None)),
        select(delegation_members.c.petitioner_id.label("pid"))
        .join(delegations, delegations.c.id == delegation_members.c.delegation_id)
        .where(delegations.c.case_id == case_id),
    )


async def _used_elsewhere(conn: AsyncConnection, case_id: str, pids: Collection[str]) -> set[str]:
    """Which of ``pids`` another case refers to."""
    if not pids:
        return set()
    wanted = sorted(pids)
    query = union(
        select(petition_parties.c.petitioner_id)
        .join(petitions, petitions.c.id == petition_parties.c.petition_id)
        .where(petition_parties.c.petitioner_id.in_(wanted), petitions.c.case_id != case_id),
        select(reception_entries.c.petitioner_id)
        .where(reception_entries.c.petitioner_id.in_(wanted), reception_entries.c.case_id != case_id),
        select(delegation_members.c.petitioner_id)
        .join(delegations, delegations.c.id == delegation_members.c.delegation_id)
        .where(delegation_members.c.petitioner_id.in_(wanted), delegations.c.case_id != case_id),
    )
    return {r[0] for r in await conn.execute(query)}


async def _repoint(conn: AsyncConnection, case_id: str, old: str, new: str) -> None:
    """Make the case refer to ``new`` wherever it referred to ``old`` (other cases untouched)."""
    own_petitions = select(petitions.c.id).where(petitions.c.case_id == case_id)
    has_new = select(petition_parties.c.petition_id).where(petition_parties.c.petitioner_id == new)
    await conn.execute(delete(petition_parties).where(
        petition_parties.c.petitioner_id == old, petition_parties.c.petition_id.in_(own_petitions),
        petition_parties.c.petition_id.in_(has_new)))
    await conn.execute(update(petition_parties).where(
        petition_parties.c.petitioner_id == old, petition_parties.c.petition_id.in_(own_petitions))
        .values(petitioner_id=new))
    await conn.execute(update(reception_entries).where(
        reception_entries.c.case_id == case_id, reception_entries.c.petitioner_id == old).values(petitioner_id=new))
    own_groups = select(delegations.c.id).where(delegations.c.case_id == case_id)
    for group, representative in (await conn.execute(
        select(delegation_members.c.delegation_id, delegation_members.c.representative)
        .where(delegation_members.c.petitioner_id == old, delegation_members.c.delegation_id.in_(own_groups))
    )).all():
        await conn.execute(delete(delegation_members).where(
            delegation_members.c.delegation_id == group, delegation_members.c.petitioner_id == old))
        present = (await conn.execute(select(delegation_members.c.representative).where(
            delegation_members.c.delegation_id == group, delegation_members.c.petitioner_id == new))).first()
        if present is None:
            await conn.execute(delegation_members.insert().values(delegation_id=group, petitioner_id=new,
                                                                  representative=representative))
        elif representative and not present.representative:
            await conn.execute(update(delegation_members).where(
                delegation_members.c.delegation_id == group, delegation_members.c.petitioner_id == new)
                .values(representative=True))


async def enforce_confidentiality(
    conn: AsyncConnection,
    keyring: Keyring,
    case_id: str,
    *,
    actor: str,
    now: datetime,
    cause: str,
    mark: bool = False,
    bump_version: bool = True,
) -> Sealing:
    """Apply the rule to one case in the caller's transaction (see the module doc); idempotent.

    ``mark`` marks the case confidential whatever it holds. ``cause`` names the write in the audit
    rows (``petition``, ``reception``, ``delegation``, ``edit``). The version is bumped
    when the case becomes confidential, unless the caller already bumped it in this transaction
    (``bump_version=False``). The caller announces a change (``Sealing.became_confidential``).
    """
    row = (await conn.execute(select(cases.c.kind, cases.c.confidential).where(cases.c.id == case_id))).first()
    if row is None:
        raise NotFound("Không tìm thấy vụ việc.")
    confidential = bool(row.confidential)
    became = False
    if not confidential:
        kinds = [r[0] for r in await conn.execute(
            select(petitions.c.kind).where(petitions.c.case_id == case_id).distinct())]
        if must_be_confidential(case_kind=row.kind, petition_kinds=kinds, marked=mark):
            values: dict[str, object] = {"confidential": True}
            if bump_version:
                values.update(version=cases.c.version + 1, updated_at=now)
            await conn.execute(update(cases).where(cases.c.id == case_id).values(**values))
            await append_audit(conn, actor=actor, action="case.confidential", target_kind="case", target_id=case_id,
                               detail={"cause": cause}, at=now)
            confidential = became = True
    referenced = _references(case_id).subquery()
    parties = {pid: bool(sealed) for pid, sealed in await conn.execute(
        select(petitioners.c.id, petitioners.c.sealed).where(petitioners.c.id.in_(select(referenced.c.pid))))}
    candidates = sorted(pid for pid, sealed in parties.items() if sealed or confidential)
    if not candidates:
        if became:
            await search.refresh_search_document(conn, case_id)
        return Sealing(became, 0)
    # Lock the records first (PostgreSQL; SQLite has one writer), so that a record another transaction
    # is linking to a case right now is seen as shared, never sealed where it stands under it.
    await conn.execute(select(petitioners.c.id).where(petitioners.c.id.in_(candidates)).with_for_update())
    shared = await _used_elsewhere(conn, case_id, candidates)
    count = 0
    for pid in candidates:
        if pid not in shared and not parties[pid]:
            await seal_in_place(conn, keyring, pid, actor=actor, case_id=case_id, cause=cause, now=now)
            count += 1
    if shared:
        # The case's own handles by the record they stand for, so a person keeps one handle here.
        origins = {await handle_origin(conn, keyring, pid): pid for pid in candidates if pid not in shared}
        for pid in sorted(shared):
            origin = await handle_origin(conn, keyring, pid)
            handle = origins.get(origin)
            if handle is None:
                handle = await sealed_copy(conn, keyring, pid, actor=actor, case_id=case_id, cause=cause, now=now)
                origins[origin] = handle
            await _repoint(conn, case_id, pid, handle)
            count += 1
    if became or count:
        await search.refresh_search_document(conn, case_id)
    return Sealing(became, count)


def _open_party_clause() -> ColumnElement[bool]:
    """The ``cases`` row of the enclosing query refers to a party whose identity is in clear."""
    person = petitioners.alias("open_party")
    party, held = petition_parties.alias("open_pp"), petitions.alias("open_pe")
    entry = reception_entries.alias("open_re")
    member, group = delegation_members.alias("open_dm"), delegations.alias("open_dg")
    in_clear = person.c.sealed.is_(False)
    by_petition = exists(select(1).select_from(
        party.join(held, held.c.id == party.c.petition_id).join(person, person.c.id == party.c.petitioner_id))
        .where(held.c.case_id == cases.c.id, in_clear).correlate_except(party, held, person))
    by_entry = exists(select(1).select_from(entry.join(person, person.c.id == entry.c.petitioner_id))
                      .where(entry.c.case_id == cases.c.id, in_clear).correlate_except(entry, person))
    by_group = exists(select(1).select_from(
        member.join(group, group.c.id == member.c.delegation_id).join(person, person.c.id == member.c.petitioner_id))
        .where(group.c.case_id == cases.c.id, in_clear).correlate_except(member, group, person))
    return or_(by_petition, by_entry, by_group)


async def cases_to_seal(conn: AsyncConnection, *, after: str = "", limit: int = 100) -> list[str]:
    """Cases confidential by the rule that still refer to a party in clear (written before the rule was
    enforced), by id after ``after``, at most ``limit``."""
    query = (select(cases.c.id).where(cases.c.id > after, confidential_clause(), _open_party_clause())
             .order_by(cases.c.id).limit(limit))
    return [r[0] for r in await conn.execute(query)]


async def seal_pending_cases(
    conn: AsyncConnection, keyring: Keyring, *, actor: str, now: datetime, after: str = "", limit: int = 100,
) -> list[tuple[str, Sealing]]:
    """Apply the rule to the next ``limit`` cases of :func:`cases_to_seal` in the caller's transaction
    (idempotent; audited as ``actor`` with cause ``backfill``). The caller announces the cases that became
    confidential (``Sealing.became_confidential``) and continues after the last id returned."""
    done: list[tuple[str, Sealing]] = []
    for case_id in await cases_to_seal(conn, after=after, limit=limit):
        done.append((case_id, await enforce_confidentiality(conn, keyring, case_id, actor=actor, now=now,
                                                            cause="backfill")))
    return done
