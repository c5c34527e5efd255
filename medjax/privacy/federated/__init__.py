"""Federated learning across hospital sites on Flower (`flwr`).

`sites` (the site split of a data set), `proximal` (FedProx's term as a Task
wrapper), `trainer` (a site's task on the engine's jitted step), `client` /
`server` / `apps` (the Flower ClientApp and ServerApp), `experiment` (local,
centralised, FedAvg and FedProx compared per site). Run with
`python -m experiments.federated`.
"""
