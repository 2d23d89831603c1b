-- One row that serializes making the first signing key: a process takes it (an UPDATE)
-- before it looks for a key, so replicas starting together on one database make one
-- key between them, not one each.

CREATE TABLE key_lock (
    id BIGINT PRIMARY KEY,
    taken_at BIGINT NOT NULL
);

INSERT INTO key_lock (id, taken_at) VALUES (1, 0);
