"""Roles and what each may do. One table, read by every route's permission check."""

from __future__ import annotations

ROLES = ("customs_officer", "supervisor", "integrator", "auditor", "admin")

# permission -> (roles granted, action in English, action in Chinese). The actions
# complete "Role X may not ..." and "角色 X 无权..." in a 403 body.
PERMISSIONS: dict[str, tuple[frozenset[str], str, str]] = {
    "containers:read": (
        frozenset({"customs_officer", "supervisor", "integrator", "auditor", "admin"}),
        "read containers",
        "查看集装箱",
    ),
    "declarations:read": (
        frozenset({"customs_officer", "supervisor", "integrator", "auditor", "admin"}),
        "read declarations",
        "查看报关单",
    ),
    "declarations:write": (frozenset({"integrator", "admin"}), "write declarations", "写入报关单"),
    "declarations:status": (
        frozenset({"customs_officer", "integrator", "admin"}),
        "change a declaration's status",
        "变更报关单状态",
    ),
    "alerts:read": (
        frozenset({"customs_officer", "supervisor", "auditor", "admin"}),
        "read alerts",
        "查看告警",
    ),
    "alerts:act": (
        frozenset({"customs_officer", "supervisor", "admin"}),
        "acknowledge or resolve alerts",
        "确认或处置告警",
    ),
    "decisions:read": (
        frozenset({"customs_officer", "supervisor", "auditor", "admin"}),
        "read gate decisions",
        "查看卡口放行指令",
    ),
    "decisions:override": (frozenset({"customs_officer"}), "override a gate hold", "人工放行被扣留的通道"),
    "reads:correct": (frozenset({"customs_officer"}), "correct a sensor read", "更正识别结果"),
    "devices:read": (
        frozenset({"customs_officer", "supervisor", "integrator", "auditor", "admin"}),
        "read devices and lanes",
        "查看设备和通道",
    ),
    "statistics:read": (
        frozenset({"customs_officer", "supervisor", "auditor", "admin"}),
        "read statistics",
        "查看统计",
    ),
    "events:read": (
        frozenset({"customs_officer", "supervisor", "integrator", "auditor", "admin"}),
        "read the event feed",
        "读取事件流",
    ),
    "stream:read": (
        frozenset({"customs_officer", "supervisor", "auditor", "admin"}),
        "open the live stream",
        "订阅实时推送",
    ),
    "audit:read": (frozenset({"auditor", "admin"}), "read the audit log", "查看审计日志"),
    "metrics:read": (frozenset({"supervisor", "admin"}), "read metrics", "读取监控指标"),
}


def allowed(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission][0]
