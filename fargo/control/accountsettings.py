"""ECS account settings (PutAccountSetting, PutAccountSettingDefault, ListAccountSettings,
DeleteAccountSetting): rules in model/accountsettings.py, rows in store/ecsrows.py."""

from __future__ import annotations

from ..model import accountsettings as rules
from ..model.accountsettings import ROOT, Setting
from ..model.errors import InvalidParameterException
from ..store.ecsrows import EcsRows


class AccountSettings:
    def __init__(self, rows: EcsRows):
        self.rows = rows

    def put(self, name: object, value: object, principal: object | None) -> Setting:
        setting = rules.check_change(name, value, rules.check_principal(principal))
        self.rows.put_setting(setting.principal, setting.name, setting.value)
        return setting

    def put_default(self, name: object, value: object) -> Setting:
        """The root user's setting: the default of every principal without its own."""
        return self.put(name, value, ROOT)

    def delete(self, name: object, principal: object | None) -> Setting:
        """The principal's own setting goes (it falls back to the root user's, or AWS's
        default); answered with the setting as it stood for the principal before."""
        name = rules.check_delete(name)
        who = rules.check_principal(principal)
        before = rules.effective(name, who, self.rows.settings())
        self.rows.delete_setting(who, name)
        return before

    def effective(self, name: str, principal: str = ROOT) -> Setting:
        return rules.effective(name, principal, self.rows.settings())

    def list(self, *, name: object | None, value: object | None, principal: object | None,
             effective: bool) -> list[Setting]:
        """The principal's own settings, or with `effective` every setting as it applies to
        the principal; `name` and `value` filter (a value needs a name, as on ECS)."""
        if value is not None and name is None:
            raise InvalidParameterException(
                "value can only be given with name: name the account setting to filter by.")
        wanted = [rules.check_name(name)] if name is not None else list(rules.SETTINGS)
        who = rules.check_principal(principal)
        explicit = self.rows.settings()
        if effective:
            found = [rules.effective(n, who, explicit) for n in wanted]
        else:
            found = [Setting(n, explicit[(who, n)], who) for n in wanted
                     if (who, n) in explicit]
        return [s for s in found if value is None or s.value == value]
