-- The model's original draft of an answer the constitution replaced (a refusal or a
-- revision). Operators see it (`charter trace`, the admin API); end users never do.
ALTER TABLE messages ADD COLUMN draft TEXT;
