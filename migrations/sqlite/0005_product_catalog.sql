-- The hosting product catalog (seed 002). Entries are validated as a whole in Rust and kept
-- as JSON documents; a product's stock is its own column so it can be reserved atomically.
CREATE TABLE catalog_first_groups (
    id         BIGINT PRIMARY KEY,
    doc        TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE catalog_groups (
    id             BIGINT PRIMARY KEY,
    first_group_id BIGINT NOT NULL REFERENCES catalog_first_groups (id),
    doc            TEXT NOT NULL,
    updated_at     BIGINT NOT NULL
);
CREATE TABLE catalog_products (
    id            BIGINT PRIMARY KEY,
    group_id      BIGINT NOT NULL REFERENCES catalog_groups (id),
    doc           TEXT NOT NULL,
    stock_control BIGINT NOT NULL,
    qty           BIGINT NOT NULL CHECK (qty >= 0),
    updated_at    BIGINT NOT NULL
);
-- Stock held by an unpaid catalog order; given back (once) when the order expires.
CREATE TABLE catalog_reservations (
    order_id    TEXT PRIMARY KEY REFERENCES orders (order_id),
    product_id  BIGINT NOT NULL REFERENCES catalog_products (id),
    qty         BIGINT NOT NULL,
    selection   TEXT NOT NULL,
    returned_at BIGINT
);
