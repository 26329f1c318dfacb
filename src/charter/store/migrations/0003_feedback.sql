-- Human feedback on answers: one label per (message, reviewer). A reviewer who changes their
-- mind updates their own row; other reviewers' labels are never touched, so disagreements
-- stay on record. `api_key_id` is the key that sent the label (NULL when keys are off).
CREATE TABLE feedback (
    id TEXT PRIMARY KEY,
    message_id TEXT NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    reviewer TEXT NOT NULL CHECK (length(reviewer) > 0),
    -- up | down
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    better TEXT,
    note TEXT,
    api_key_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    -- Also the index that finds a message's labels.
    UNIQUE (message_id, reviewer)
);
