-- Each change of an order as its payer sees it (status, payments, confirmations), appended by
-- the watcher-lease holder. `seq` is the Server-Sent Events id a client resumes from.
CREATE TABLE order_events (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id   TEXT NOT NULL REFERENCES orders (order_id),
    event      TEXT NOT NULL,
    data       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX order_events_by_order ON order_events (order_id, seq);
CREATE INDEX orders_updated ON orders (updated_at);
