"""Every table of Rundfunk, as SQLAlchemy Core tables.

Core rather than ORM because the hot paths (fan-out, claiming, status batches) are
set-based SQL; the migrations in ``migrations/versions`` create exactly these.
Every row that belongs to a business carries ``workspace_id`` so that each query can
be scoped to one workspace.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from rundfunk.db.types import BigId, UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)


def _ws() -> Column[int]:
    return Column(
        "workspace_id", BigId, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    )


def _created() -> Column[object]:
    return Column("created_at", UTCDateTime(), nullable=False)


workspaces = Table(
    "workspaces",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    # privacy_url, imprint_url, timezone, welcome/goodbye/help texts (see services.workspaces)
    Column("settings", JSON, nullable=False),
    _created(),
)

members = Table(
    "members",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("email", String(254), nullable=False),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),  # owner | admin | editor | agent
    Column("password_hash", String(200)),  # argon2; NULL until a password is set
    _created(),
    # The console's language for this member: "en" or "de"; NULL means English.
    Column("locale", String(8)),
    # An invitation to set a password: sha256 of the one-time link's token.
    Column("invite_hash", String(64), unique=True),
    Column("invite_expires_at", UTCDateTime()),
    UniqueConstraint("workspace_id", "email"),
)

# Console logins. Only the cookie's hash is stored; the CSRF token is per session.
sessions = Table(
    "sessions",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("member_id", BigId, ForeignKey("members.id", ondelete="CASCADE"), nullable=False),
    Column("csrf_token", String(64), nullable=False),
    _created(),
    Column("expires_at", UTCDateTime(), nullable=False),
    Index(None, "member_id"),
)

# Failed console logins per e-mail address and per client address (throttling).
login_attempts = Table(
    "login_attempts",
    metadata,
    Column("key", String(300), primary_key=True),
    Column("failures", Integer, nullable=False),
    Column("last_failure_at", UTCDateTime(), nullable=False),
    Column("locked_until", UTCDateTime()),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("member_id", BigId, ForeignKey("members.id", ondelete="CASCADE")),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("prefix", String(16), nullable=False),  # shown in listings, never the secret
    Column("token_hash", String(64), nullable=False, unique=True),  # sha256 of the token
    _created(),
    Column("last_used_at", UTCDateTime()),
    Column("revoked_at", UTCDateTime()),
)

channels = Table(
    "channels",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("kind", String(16), nullable=False),  # sandbox | whatsapp | telegram
    Column("name", String(200), nullable=False),
    Column("credentials", Text),  # Fernet-encrypted JSON; never returned by the API
    Column("settings", JSON, nullable=False),  # keywords, throughput, sandbox behaviour
    Column("status", String(16), nullable=False),  # active | disabled
    Column("status_reason", Text),
    _created(),
    # Bumped by every change (rate, secrets, status): other processes rebuild their copy.
    Column("version", BigInteger, nullable=False, default=1, server_default="1"),
)

contacts = Table(
    "contacts",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(128), nullable=False),  # wa_id, chat id, sandbox phone
    Column("name", String(200)),
    Column("language", String(16)),
    Column("attributes", JSON, nullable=False),
    Column("tags", JSON, nullable=False),
    # The channel-wide opt-in: subscribed | unsubscribed | none (wrote, never opted in).
    Column("status", String(16), nullable=False),
    Column("blocked", Boolean, nullable=False),
    Column("last_inbound_at", UTCDateTime()),
    # Blocking (migration 0009): since when, and how many messages came in while blocked
    # (kept as messages with the status "blocked", outside every conversation).
    Column("blocked_at", UTCDateTime()),
    Column("blocked_messages", Integer, nullable=False, server_default="0"),
    _created(),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("channel_id", "address"),
    Index(None, "channel_id", "status"),
)

topics = Table(
    "topics",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("key", String(64), nullable=False),
    Column("name", String(200), nullable=False),
    _created(),
    UniqueConstraint("workspace_id", "key"),
)

# A contact's interest in one topic. The channel-wide opt-in is contacts.status; a
# subscription row only counts while that is "subscribed".
subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("contact_id", BigId, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("topic_id", BigId, ForeignKey("topics.id", ondelete="CASCADE"), nullable=False),
    _created(),
    UniqueConstraint("contact_id", "topic_id"),
    Index(None, "topic_id", "contact_id"),
)

# Append-only: rows are inserted, never updated or deleted (except by erasure of the
# whole contact).
consent_events = Table(
    "consent_events",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("contact_id", BigId, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # opt_in | opt_out
    Column("topic_id", BigId, ForeignKey("topics.id", ondelete="SET NULL")),
    Column("source", String(32), nullable=False),  # keyword | api | platform | send_error
    Column("keyword", Text),  # what the person wrote, if anything
    Column("text_shown", Text),  # the confirmation we answered with
    Column("actor", String(64), nullable=False),  # contact | member:<id> | token:<id> | platform
    _created(),
    Index(None, "contact_id"),
)

broadcasts = Table(
    "broadcasts",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("text", Text, nullable=False),  # for a template broadcast: the template's body
    Column("media_url", Text),
    # What goes beyond text and media: {"template": {...}} on WhatsApp, an uploaded
    # media id, a document's filename (see services.content).
    Column("content", JSON),
    Column("topic_ids", JSON, nullable=False),  # empty: every subscriber of the channel
    # draft | scheduled | sending | paused | done | cancelled
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("send_at", UTCDateTime()),
    Column("started_at", UTCDateTime()),
    Column("finished_at", UTCDateTime()),
    Column("total", Integer, nullable=False),
    Column("created_by", String(64), nullable=False),
    _created(),
    Index(None, "status", "send_at"),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "broadcast_id", BigId, ForeignKey("broadcasts.id", ondelete="CASCADE"), nullable=False
    ),
    Column("contact_id", BigId, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    Column("channel_id", BigId, nullable=False),
    # queued | sending | sent | delivered | read | failed | skipped (core.deliveries)
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime(), nullable=False),
    Column("lease_until", UTCDateTime()),
    Column("provider_message_id", String(128)),
    Column("error_code", String(32)),
    Column("error_reason", Text),
    Column("updated_at", UTCDateTime(), nullable=False),
    # When the platform accepted it: counts toward the rolling daily recipient cap.
    Column("sent_at", UTCDateTime()),
    # The delivery guarantee: one row, hence at most one send, per broadcast and person.
    UniqueConstraint("broadcast_id", "contact_id"),
    # The claim query walks this index: queued rows that are due, oldest first.
    Index(None, "status", "next_attempt_at"),
    Index(None, "provider_message_id"),
    Index(None, "channel_id", "sent_at"),
)

# Message templates as the platform approved them (WhatsApp), synced from its API.
templates = Table(
    "templates",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(512), nullable=False),
    Column("language", String(16), nullable=False),
    Column("category", String(32), nullable=False),  # MARKETING | UTILITY | AUTHENTICATION
    Column("status", String(32), nullable=False),  # APPROVED | PAUSED | DISABLED | ...
    Column("external_id", String(64)),
    Column("components", JSON, nullable=False),  # header, body, footer, buttons as synced
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("channel_id", "name", "language"),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    # One conversation per contact: resolved ones are reopened by the next message.
    Column(
        "contact_id",
        BigId,
        ForeignKey("contacts.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("status", String(16), nullable=False),  # open | pending | resolved
    Column("assignee_id", BigId, ForeignKey("members.id", ondelete="SET NULL")),
    Column("last_inbound_at", UTCDateTime()),
    Column("last_message_at", UTCDateTime(), nullable=False),
    _created(),
    # When a member last opened the thread: newer inbound messages are unread.
    Column("agent_last_seen_at", UTCDateTime()),
    Index(None, "workspace_id", "status"),
)

# Canned responses: short answers an agent inserts by their short code.
canned_responses = Table(
    "canned_responses",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("short_code", String(64), nullable=False),
    Column("text", Text, nullable=False),
    _created(),
    UniqueConstraint("workspace_id", "short_code"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("contact_id", BigId, ForeignKey("contacts.id", ondelete="CASCADE"), nullable=False),
    # NULL for keyword traffic (START/STOP and their confirmations), which is logged
    # but does not open a conversation.
    Column("conversation_id", BigId, ForeignKey("conversations.id", ondelete="CASCADE")),
    Column("direction", String(8), nullable=False),  # in | out | note
    Column("kind", String(16), nullable=False),  # text | media | location | ... | system
    Column("text", Text),
    Column("media_url", Text),
    Column("payload", JSON),  # the channel-neutral details of non-text messages
    Column("provider_message_id", String(128)),
    # outbound: queued | sending | sent | delivered | read | failed; inbound: received,
    # or blocked (written by a blocked contact: kept out of the inbox, see services.blocking)
    Column("status", String(16), nullable=False),
    Column("author_id", BigId, ForeignKey("members.id", ondelete="SET NULL")),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UTCDateTime()),
    Column("lease_until", UTCDateTime()),
    Column("error_reason", Text),
    _created(),
    # Inbound deduplication: a provider id is stored once per channel.
    UniqueConstraint("channel_id", "provider_message_id"),
    Index(None, "conversation_id", "id"),
    Index(None, "status", "next_attempt_at"),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigId, primary_key=True),
    _ws(),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),  # broadcast.send, conversation.assign, …
    Column("target_type", String(32)),
    Column("target_id", BigId),
    Column("details", JSON, nullable=False),
    _created(),
)

# The sandbox channel's simulated platform: what each simulated phone received. It
# lives in the same database as the deliveries so that "the phone got it" and "the
# delivery is sent" commit together (exactly-once by construction).
sandbox_messages = Table(
    "sandbox_messages",
    metadata,
    Column("id", BigId, primary_key=True),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("address", String(128), nullable=False),
    Column("provider_message_id", String(64), nullable=False, unique=True),
    Column("text", Text),
    Column("media_url", Text),
    Column("callback_data", String(64)),
    Column("status", String(16), nullable=False),  # sent | delivered | read
    Column("received_at", UTCDateTime(), nullable=False),
    Column("delivered_at", UTCDateTime()),
    Column("read_at", UTCDateTime()),
    Index(None, "channel_id", "address"),
    Index(None, "status", "received_at"),
)

# The shared per-sender rate limit of scaled mode without Redis: one GCRA theoretical
# arrival time per key (see core.ratelimit), updated in one statement per reservation.
rate_limits = Table(
    "rate_limits",
    metadata,
    Column("key", String(128), primary_key=True),
    Column("tat", Float, nullable=False),  # seconds on the database server's clock
    Column("rate", Float),  # the configured rate of the last reservation (migration 0008)
)

# Verified platform webhooks, stored as received before the route answers 200 (group
# commit: one transaction for many POSTs) and applied afterwards in batches by any web
# process (``services.webhook_inbox``). A row is deleted once applied; rows a crash left
# are applied at the next start. ``claimed_until``/``claim`` lease a row whose inbound
# messages are applied in transactions of their own; ``attempts`` counts failed tries.
webhook_inbox = Table(
    "webhook_inbox",
    metadata,
    # 64 bits: ~3,000 webhooks/s would use up a 32-bit id in about eight days.
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("received_at", UTCDateTime(), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the raw bytes the signature was checked on
    Column("claimed_until", UTCDateTime()),
    Column("claim", String(32)),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
)


# Items of stored webhooks (one message, status, consent or template event) that could
# not be applied even on their own (migration 0007): kept with the error for an admin to
# retry or discard (``services.dead_letters``), never silently dropped. ``item`` is the
# channel-neutral event as JSON text (ASCII: any character survives both engines);
# ``kind`` "webhook" is a whole stored webhook that kept failing before it was parsed.
webhook_dead_letters = Table(
    "webhook_dead_letters",
    metadata,
    Column("id", BigId, primary_key=True),
    Column(
        "workspace_id", BigId, ForeignKey("workspaces.id", ondelete="CASCADE"), nullable=False
    ),
    Column("channel_id", BigId, ForeignKey("channels.id", ondelete="CASCADE"), nullable=False),
    Column("kind", String(16), nullable=False),  # message | status | consent | template | webhook
    Column("item", Text, nullable=False),
    Column("error", Text, nullable=False),
    Column("first_failed_at", UTCDateTime(), nullable=False),
    Column("last_failed_at", UTCDateTime(), nullable=False),
    Column("attempts", Integer, nullable=False),
    Index(None, "workspace_id", "id"),
    Index(None, "channel_id", "id"),
)
