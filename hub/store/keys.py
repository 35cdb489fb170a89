"""The key layout. Per-peer keys share the hash tag `{peer_id}` and per-message keys the tag
`{message_id}`, so every multi-key script touches one slot and the store may be a cluster."""

from __future__ import annotations

PREFIX = "rw"
PEERS = f"{PREFIX}:peers"            # set of peer ids
NAMES = f"{PREFIX}:names"            # hash "circle/name" -> peer id
TOKENS = f"{PREFIX}:tokens"          # hash token digest -> peer id
META = f"{PREFIX}:meta"              # hash: epoch, created
EVENTS = f"{PREFIX}:events"          # stream of hub events (presence, traces, questions), bounded


def peer(peer_id: str) -> str:
    return f"{PREFIX}:peer:{{{peer_id}}}"


def inbox(peer_id: str) -> str:
    return f"{PREFIX}:inbox:{{{peer_id}}}"


def idempotency(peer_id: str, key: str) -> str:
    return f"{PREFIX}:idem:{{{peer_id}}}:{key}"


def trace(message_id: str) -> str:
    return f"{PREFIX}:trace:{{{message_id}}}"


def name_field(circle: str, name: str) -> str:
    return f"{circle}/{name}"


# ---- asks: the ask hash, the asker's outbound index and its deadlines live in the asker's
# slot, so that creating an ask, and closing it while queueing the reply for the asker, are one
# script each. Who asked is read from the ask's trace (its first stage names the asker).


def deadlines(asker_id: str) -> str:
    """zset correlation id -> deadline (ms), the asker's open asks only."""
    return f"{PREFIX}:deadlines:{{{asker_id}}}"


def ask(asker_id: str, correlation_id: str) -> str:
    return f"{PREFIX}:ask:{{{asker_id}}}:{correlation_id}"


def asks_inbound(peer_id: str) -> str:
    return f"{PREFIX}:asks:in:{{{peer_id}}}"


def asks_outbound(peer_id: str) -> str:
    return f"{PREFIX}:asks:out:{{{peer_id}}}"


def asks_closing(asker_id: str) -> str:
    """zset "<correlation id>|<node>/<instance>" -> closed_at: closes whose final trace stage is
    not written yet (it is written right after; a crash in between leaves the entry)"""
    return f"{PREFIX}:asks:closing:{{{asker_id}}}"


def ask_group(group_id: str) -> str:
    return f"{PREFIX}:askgroup:{{{group_id}}}"


# ---- tool-permission questions: each question is one hash in its own slot; the pending index,
# the policies and the audit log are hub-wide keys written beside it (they are indexes and a
# log: the question hash is the truth).

QUESTIONS_PENDING = f"{PREFIX}:questions:pending"   # zset question id -> deadline (ms)
POLICIES = f"{PREFIX}:policies"                     # hash policy id -> rule JSON
APPROVAL_PRESET = f"{PREFIX}:policies:preset"       # string: the approval preset's name (unset: the default)
PEOPLE = f"{PREFIX}:people"                         # hash node -> people watching for questions there
DECISIONS = f"{PREFIX}:decisions"                   # stream: one entry per decision, bounded


def question(question_id: str) -> str:
    return f"{PREFIX}:question:{{{question_id}}}"


# ---- schedules: each schedule is one hash with its fire history beside it (tag `{schedule id}`),
# so claiming an occurrence and recording its fire are one script each. The id set, the due
# index and the in-flight index are hub-wide indexes written beside the hash: the hash is the
# truth, and a node that finds an index out of step with it mends the index.

SCHEDULES = f"{PREFIX}:schedules"                     # set of schedule ids
SCHEDULES_DUE = f"{PREFIX}:schedules:due"             # zset schedule id -> next due time (ms), active only
SCHEDULES_INFLIGHT = f"{PREFIX}:schedules:inflight"   # zset schedule id -> when its claim was made (ms)
SCHEDULES_CHANGED = f"{PREFIX}:schedules:changed"     # pub/sub channel: wakes the other nodes' timers


def schedule(schedule_id: str) -> str:
    return f"{PREFIX}:schedule:{{{schedule_id}}}"


def schedule_fires(schedule_id: str) -> str:
    return f"{PREFIX}:schedule:{{{schedule_id}}}:fires"


def schedules_of(peer_id: str) -> str:
    """set of the schedule ids a peer created"""
    return f"{PREFIX}:schedules:by:{{{peer_id}}}"


# ---- attachments: all metadata in one slot (tag `{attachments}`), so that committing an upload
# against the per-peer and hub totals, and removing one, are one script each. The bytes are
# files on the disk of the node that took the upload (`node` in the metadata).

ATTACHMENTS = f"{PREFIX}:{{attachments}}:meta"          # hash id -> metadata JSON
ATTACHMENTS_USED = f"{PREFIX}:{{attachments}}:used"     # hash uploader id -> bytes stored; '*' -> all
ATTACHMENTS_EXPIRY = f"{PREFIX}:{{attachments}}:expiry"  # zset id -> when it may be removed (ms)


def attachments_of_node(node: str) -> str:
    """set of the attachment ids whose file is on `node`'s disk"""
    return f"{PREFIX}:{{attachments}}:node:{node}"


def attachment_readers(attachment_id: str) -> str:
    """set of the peer ids that were sent a message carrying the attachment"""
    return f"{PREFIX}:{{attachments}}:readers:{attachment_id}"


def attachment_refs(attachment_id: str) -> str:
    """set of the messages carrying the attachment (`inbox|peer|message id`, `ask|asker|cid`)"""
    return f"{PREFIX}:{{attachments}}:refs:{attachment_id}"


# ---- hub nodes: where each node can be reached by the others, and the key they show it.

NODES = f"{PREFIX}:nodes"    # hash node name -> JSON {url, pid, started_at}
MESH = f"{PREFIX}:mesh"      # hash: `key`, the secret nodes present to each other
BUS = f"{PREFIX}:bus"        # pub/sub channel every node hears: "<kind> <node> <data>"


def wake_channel(node: str) -> str:
    """pub/sub channel a node hears: ids of its peers that have new deliveries (scripts.ENQUEUE
    publishes on it; the prefix is spelled out there too)."""
    return f"{PREFIX}:wake:{node}"


def node_lease(node: str) -> str:
    """string "<host> <pid> <instance>", expiring: the node is alive while it is renewed"""
    return f"{PREFIX}:lease:{node}"


# ---- the dashboard: one-time sign-in links and browser sessions, by the digest of their secret.

def dashboard_link(code_digest: str) -> str:
    return f"{PREFIX}:dashboard:link:{code_digest}"


def dashboard_session(secret_digest: str) -> str:
    return f"{PREFIX}:dashboard:session:{secret_digest}"


# ---- jobs: a job's hash, its trace and its progress share the tag of the job; the work items a
# recurring job (`cal-<tag>`) fires are `<tag>.<n>`, in the same slot, so that a fire makes its
# work item in the one script that advances the template.
JOBS_WORK = f"{PREFIX}:jobs:work"            # zset work item id -> created_at (ms)
JOBS_RECURRING = f"{PREFIX}:jobs:recurring"  # zset recurring job id -> created_at (ms)
JOBS_DUE = f"{PREFIX}:jobs:due"              # zset: queued work -> when it may start; recurring -> next fire
JOBS_RUNNING = f"{PREFIX}:jobs:running"      # zset running work item id -> when its node's lease on it ends
JOBS_FINISHED = f"{PREFIX}:jobs:finished"    # zset: jobs that are over -> when (ms); the retention sweep reads it
JOBS_CHANGED = f"{PREFIX}:jobs:changed"      # pub/sub channel: new work, a cancel; wakes the nodes' timers


def job_tag(job_id: str) -> str:
    return job_id.removeprefix("cal-").split(".", 1)[0]


def job(job_id: str) -> str:
    return f"{PREFIX}:job:{{{job_tag(job_id)}}}:{job_id}"


def job_trace(job_id: str) -> str:
    """list of a work item's stages (or a recurring job's fires), oldest first, bounded"""
    return f"{PREFIX}:job:{{{job_tag(job_id)}}}:{job_id}:trace"


def job_progress(job_id: str) -> str:
    """list of a work item's progress entries, bounded to the newest"""
    return f"{PREFIX}:job:{{{job_tag(job_id)}}}:{job_id}:progress"


def jobs_of(peer_id: str) -> str:
    """zset of the job ids a peer made (work and recurring) -> created_at"""
    return f"{PREFIX}:jobs:by:{{{peer_id}}}"


def jobs_open_of(peer_id: str) -> str:
    """set of the jobs a peer made that are not over (its limit counts these)"""
    return f"{PREFIX}:jobs:open:{{{peer_id}}}"
