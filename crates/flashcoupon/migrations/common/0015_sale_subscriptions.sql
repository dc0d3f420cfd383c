-- "Notify me" for time sales: who asked to hear that a sale opens soon,
-- opened or sold out (the campaigns' `subscriptions`, for sales). The once
-- keys of the inbox decide who was told. Same text on SQLite and PostgreSQL.
CREATE TABLE sale_subscriptions (
    sale_id    TEXT NOT NULL REFERENCES sales (id),
    user_id    TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (sale_id, user_id)
);
