"""Flower App components: the ServerApp and ClientApp of `medjax.privacy.federated`."""

from medjax.privacy.federated.apps import client_app, server_app

__all__ = ["client_app", "server_app"]
