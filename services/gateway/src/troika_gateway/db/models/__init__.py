"""The gateway's tables. Every row of user data is reachable from its owner's ``user_id``.

Importing this package registers every table on :data:`Base.metadata` (the migrations compare
against it).
"""

from troika_gateway.db.models.base import Base, new_uuid, table_of
from troika_gateway.db.models.delivery import Outbox, ProcessedMessage
from troika_gateway.db.models.people import (
    Credential,
    Device,
    PairingCode,
    RetiredRefreshToken,
    Session,
    SocialAccount,
    ToolPolicy,
    User,
    UserPhoto,
)
from troika_gateway.db.models.tasks import (
    AuditEntry,
    File,
    Interaction,
    LlmUsage,
    Schedule,
    ScheduleRun,
    Subtask,
    Task,
    TaskEvent,
    ToolCall,
)
from troika_gateway.pipeline.states import TaskStatus

__all__ = [
    "AuditEntry",
    "Base",
    "Credential",
    "Device",
    "File",
    "Interaction",
    "LlmUsage",
    "Outbox",
    "PairingCode",
    "ProcessedMessage",
    "RetiredRefreshToken",
    "Schedule",
    "ScheduleRun",
    "Session",
    "SocialAccount",
    "Subtask",
    "Task",
    "TaskEvent",
    "TaskStatus",
    "ToolCall",
    "ToolPolicy",
    "User",
    "UserPhoto",
    "new_uuid",
    "table_of",
]
