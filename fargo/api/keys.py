"""The typed keys of the aiohttp app that every face shares: the settings and IAM (who may
call). Each face's own control objects have keys of their own (api/logs.py, api/kube/keys.py)."""

from __future__ import annotations

from aiohttp import web

from ..config import Settings
from ..control.iam import Iam

SETTINGS = web.AppKey("settings", Settings)
IAM = web.AppKey("iam", Iam)
