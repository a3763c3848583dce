"""ELBv2's records (model/elbv2.py) as they are (msgspec JSON), in the same SQLite file as the
rest of the state: load balancers, target groups, listeners, rules and registered targets,
each its own table, with the columns the lookups use. Creation order is the rowid's."""

from __future__ import annotations

from typing import Any

import msgspec

from ..model.elbv2 import Listener, LoadBalancer, Rule, Target, TargetGroup
from .sqlite import Store

_SCHEMA = """
CREATE TABLE IF NOT EXISTS elbv2_load_balancers (
    arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS elbv2_target_groups (
    arn TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, record BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS elbv2_listeners (
    arn TEXT PRIMARY KEY, lb TEXT NOT NULL, port INTEGER NOT NULL, record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS elbv2_listeners_by_lb ON elbv2_listeners (lb);
CREATE TABLE IF NOT EXISTS elbv2_rules (
    arn TEXT PRIMARY KEY, listener TEXT NOT NULL, priority INTEGER NOT NULL,
    record BLOB NOT NULL);
CREATE INDEX IF NOT EXISTS elbv2_rules_by_listener ON elbv2_rules (listener, priority);
CREATE TABLE IF NOT EXISTS elbv2_targets (
    tg TEXT NOT NULL, ip TEXT NOT NULL, port INTEGER NOT NULL, record BLOB NOT NULL,
    PRIMARY KEY (tg, ip, port));
"""
_enc = msgspec.json.Encoder()
_LB = msgspec.json.Decoder(LoadBalancer)
_TG = msgspec.json.Decoder(TargetGroup)
_LISTENER = msgspec.json.Decoder(Listener)
_RULE = msgspec.json.Decoder(Rule)
_TARGET = msgspec.json.Decoder(Target)


class Elbv2Tables:
    def __init__(self, store: Store):
        self.store = store
        with store.locked() as db:
            db.executescript(_SCHEMA)

    def _upsert(self, sql: str, args: tuple[Any, ...]) -> None:
        self.store.execute(sql, args)

    # load balancers
    def put_lb(self, lb: LoadBalancer) -> None:
        self._upsert("INSERT INTO elbv2_load_balancers VALUES (?,?,?) ON CONFLICT(arn) DO "
                     "UPDATE SET name=excluded.name, record=excluded.record",
                     (lb.arn, lb.name, _enc.encode(lb)))

    def get_lb(self, arn: str) -> LoadBalancer | None:
        rows = self.store.rows("SELECT record FROM elbv2_load_balancers WHERE arn=?", (arn,))
        return _LB.decode(rows[0][0]) if rows else None

    def lb_by_name(self, name: str) -> LoadBalancer | None:
        rows = self.store.rows("SELECT record FROM elbv2_load_balancers WHERE name=?", (name,))
        return _LB.decode(rows[0][0]) if rows else None

    def lbs(self) -> list[LoadBalancer]:
        rows = self.store.rows("SELECT record FROM elbv2_load_balancers ORDER BY rowid")
        return [_LB.decode(r[0]) for r in rows]

    def delete_lb(self, arn: str) -> None:
        """The load balancer with its listeners and their rules."""
        with self.store.locked() as db:
            db.execute("DELETE FROM elbv2_rules WHERE listener IN (SELECT arn FROM "
                       "elbv2_listeners WHERE lb=?)", (arn,))
            db.execute("DELETE FROM elbv2_listeners WHERE lb=?", (arn,))
            db.execute("DELETE FROM elbv2_load_balancers WHERE arn=?", (arn,))

    # target groups
    def put_tg(self, tg: TargetGroup) -> None:
        self._upsert("INSERT INTO elbv2_target_groups VALUES (?,?,?) ON CONFLICT(arn) DO "
                     "UPDATE SET name=excluded.name, record=excluded.record",
                     (tg.arn, tg.name, _enc.encode(tg)))

    def get_tg(self, arn: str) -> TargetGroup | None:
        rows = self.store.rows("SELECT record FROM elbv2_target_groups WHERE arn=?", (arn,))
        return _TG.decode(rows[0][0]) if rows else None

    def tg_by_name(self, name: str) -> TargetGroup | None:
        rows = self.store.rows("SELECT record FROM elbv2_target_groups WHERE name=?", (name,))
        return _TG.decode(rows[0][0]) if rows else None

    def tgs(self) -> list[TargetGroup]:
        rows = self.store.rows("SELECT record FROM elbv2_target_groups ORDER BY rowid")
        return [_TG.decode(r[0]) for r in rows]

    def count_tgs(self) -> int:
        return int(self.store.rows("SELECT COUNT(*) FROM elbv2_target_groups")[0][0])

    def delete_tg(self, arn: str) -> None:
        """The target group with its registrations."""
        with self.store.locked() as db:
            db.execute("DELETE FROM elbv2_targets WHERE tg=?", (arn,))
            db.execute("DELETE FROM elbv2_target_groups WHERE arn=?", (arn,))

    # listeners
    def put_listener(self, listener: Listener) -> None:
        self._upsert("INSERT INTO elbv2_listeners VALUES (?,?,?,?) ON CONFLICT(arn) DO "
                     "UPDATE SET port=excluded.port, record=excluded.record",
                     (listener.arn, listener.lb_arn, listener.port, _enc.encode(listener)))

    def get_listener(self, arn: str) -> Listener | None:
        rows = self.store.rows("SELECT record FROM elbv2_listeners WHERE arn=?", (arn,))
        return _LISTENER.decode(rows[0][0]) if rows else None

    def listeners(self, lb_arn: str | None = None) -> list[Listener]:
        if lb_arn is None:
            rows = self.store.rows("SELECT record FROM elbv2_listeners ORDER BY rowid")
        else:
            rows = self.store.rows("SELECT record FROM elbv2_listeners WHERE lb=? ORDER BY "
                                   "rowid", (lb_arn,))
        return [_LISTENER.decode(r[0]) for r in rows]

    def delete_listener(self, arn: str) -> None:
        with self.store.locked() as db:
            db.execute("DELETE FROM elbv2_rules WHERE listener=?", (arn,))
            db.execute("DELETE FROM elbv2_listeners WHERE arn=?", (arn,))

    # rules (the default rule of each listener is its listener's record)
    def put_rule(self, rule: Rule) -> None:
        self._upsert("INSERT INTO elbv2_rules VALUES (?,?,?,?) ON CONFLICT(arn) DO UPDATE SET "
                     "priority=excluded.priority, record=excluded.record",
                     (rule.arn, rule.listener_arn, rule.priority, _enc.encode(rule)))

    def put_rules(self, rules: list[Rule]) -> None:
        """Several at once (SetRulePriorities): all or none."""
        with self.store.locked() as db:
            db.execute("SAVEPOINT rules")
            try:
                for rule in rules:
                    db.execute("UPDATE elbv2_rules SET priority=?, record=? WHERE arn=?",
                               (rule.priority, _enc.encode(rule), rule.arn))
            except BaseException:
                db.execute("ROLLBACK TO rules")
                raise
            finally:
                db.execute("RELEASE rules")

    def get_rule(self, arn: str) -> Rule | None:
        rows = self.store.rows("SELECT record FROM elbv2_rules WHERE arn=?", (arn,))
        return _RULE.decode(rows[0][0]) if rows else None

    def rules(self, listener_arn: str | None = None) -> list[Rule]:
        if listener_arn is None:
            rows = self.store.rows("SELECT record FROM elbv2_rules ORDER BY listener, priority")
        else:
            rows = self.store.rows("SELECT record FROM elbv2_rules WHERE listener=? ORDER BY "
                                   "priority", (listener_arn,))
        return [_RULE.decode(r[0]) for r in rows]

    def count_rules(self, listener_arns: list[str]) -> int:
        if not listener_arns:
            return 0
        marks = ",".join("?" * len(listener_arns))
        return int(self.store.rows(f"SELECT COUNT(*) FROM elbv2_rules WHERE listener IN "
                                   f"({marks})", tuple(listener_arns))[0][0])

    def delete_rule(self, arn: str) -> None:
        self.store.execute("DELETE FROM elbv2_rules WHERE arn=?", (arn,))

    # registered targets
    def put_target(self, target: Target) -> None:
        self.store.execute("INSERT INTO elbv2_targets VALUES (?,?,?,?) ON CONFLICT(tg, ip, "
                           "port) DO UPDATE SET record=excluded.record",
                           (target.tg_arn, target.ip, target.port, _enc.encode(target)))

    def get_target(self, tg_arn: str, ip: str, port: int) -> Target | None:
        rows = self.store.rows("SELECT record FROM elbv2_targets WHERE tg=? AND ip=? AND "
                               "port=?", (tg_arn, ip, port))
        return _TARGET.decode(rows[0][0]) if rows else None

    def targets(self, tg_arn: str | None = None) -> list[Target]:
        if tg_arn is None:
            rows = self.store.rows("SELECT record FROM elbv2_targets ORDER BY rowid")
        else:
            rows = self.store.rows("SELECT record FROM elbv2_targets WHERE tg=? ORDER BY rowid",
                                   (tg_arn,))
        return [_TARGET.decode(r[0]) for r in rows]

    def registrations(self, ip: str) -> int:
        """How many target groups hold this IP (AWS limits registrations per target)."""
        return int(self.store.rows("SELECT COUNT(DISTINCT tg) FROM elbv2_targets WHERE ip=?",
                                   (ip,))[0][0])

    def delete_target(self, tg_arn: str, ip: str, port: int) -> None:
        self.store.execute("DELETE FROM elbv2_targets WHERE tg=? AND ip=? AND port=?",
                           (tg_arn, ip, port))
