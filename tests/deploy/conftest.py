"""Deployment tests: the compose file's static checks, and the compose stack started for real (marked ``compose``)."""

from __future__ import annotations


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "compose: builds the images and starts the docker-compose stack (needs a container engine)"
    )
