"""Wiring of the signed documents (:mod:`minutes.documents_store`) into the app: one
:class:`~minutes.documents_store.DocumentStore` built from ``Settings.document_options``, with the configured
signer (in dev mode with none configured, the local test signer of :mod:`tiepdan.dev_signer`; in production
with none, documents stay unsigned drafts), waking the outbox relay after each signature. The console's
document pages (``room_console.views.documents``) read it from ``app.state.documents``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from minutes.documents_store import DocumentStore

from .dev_signer import signer_for

if TYPE_CHECKING:
    from .app import Services

__all__ = ["wire_documents"]


def wire_documents(app: FastAPI, services: Services) -> DocumentStore:
    settings = services.settings
    options = settings.document_options
    signer = signer_for(options, mode=settings.mode, data_dir=settings.data_dir)
    store = DocumentStore(services.engine, options, services.keyring, signer=signer,
                          notify_outbox=services.outbox.notify)
    app.state.documents = store
    return store
