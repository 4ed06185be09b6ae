-- A count store as the pre-Alembic gateway wrote it (meta.schema_version 4), made by
-- that code (commit 7e1683c) and dumped portably: tests/test_store_migrations.py
-- loads it into SQLite and PostgreSQL and opens it with today's store. Devices:
-- walker-old (token legacy-walker-token), manager-old, gone (revoked). One session,
-- three counted photos: the first corrected (Damaged, 5) and confirmed and delivered
-- to sheets, the second confirmed, the third open.
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE devices (
        id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, role TEXT NOT NULL,
        token_hash TEXT NOT NULL UNIQUE, created_at TEXT NOT NULL, last_seen TEXT,
        revoked_at TEXT, token_at TEXT);
CREATE TABLE sessions (
        id TEXT PRIMARY KEY, device_id TEXT NOT NULL REFERENCES devices(id),
        walker TEXT NOT NULL, label TEXT, created_at TEXT NOT NULL, confirmed_at TEXT);
CREATE TABLE counts (
        id TEXT PRIMARY KEY, session_id TEXT NOT NULL REFERENCES sessions(id),
        device_id TEXT NOT NULL REFERENCES devices(id), client_id TEXT NOT NULL,
        source TEXT NOT NULL, location TEXT, photo_hash TEXT NOT NULL,
        photo_bytes INTEGER NOT NULL, status TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, error_code TEXT, error_message TEXT,
        result_json TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL,
        finished_at TEXT, confirmed_at TEXT, confirmed_by TEXT, photo_purged_at TEXT,
        bay_id TEXT, replaces TEXT, part_of TEXT, superseded_by TEXT, location_choice TEXT,
        recount_note TEXT, recount_by TEXT, recount_at TEXT,
        UNIQUE (device_id, client_id));
CREATE TABLE corrections (
        id TEXT PRIMARY KEY, count_id TEXT NOT NULL REFERENCES counts(id),
        location TEXT, sku TEXT NOT NULL, model_quantity INTEGER, quantity INTEGER NOT NULL,
        row_json TEXT NOT NULL, by_device TEXT NOT NULL, by_name TEXT NOT NULL,
        corrected_at TEXT NOT NULL, row_condition TEXT, client_id TEXT);
CREATE TABLE outbox (
        id TEXT PRIMARY KEY, count_id TEXT NOT NULL UNIQUE REFERENCES counts(id),
        session_id TEXT NOT NULL, walker TEXT NOT NULL, location TEXT,
        rows_json TEXT NOT NULL, created_at TEXT NOT NULL, revises TEXT);
CREATE TABLE outbox_delivery (
        entry_id TEXT NOT NULL REFERENCES outbox(id), sink TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0, delivered_at TEXT, last_error TEXT,
        retry_at TEXT, PRIMARY KEY (entry_id, sink));
CREATE INDEX sessions_device ON sessions(device_id, created_at);
CREATE INDEX counts_session ON counts(session_id, created_at);
CREATE INDEX counts_status ON counts(status);
CREATE INDEX counts_photo ON counts(photo_hash);
CREATE INDEX corrections_count ON corrections(count_id);
CREATE UNIQUE INDEX corrections_client ON corrections(count_id, client_id);
CREATE INDEX counts_bay ON counts(bay_id);
INSERT INTO meta (key, value) VALUES ('schema_version', '4');
INSERT INTO devices (id, name, role, token_hash, created_at, last_seen, revoked_at, token_at) VALUES ('d769b30600f14f51aa96400d2df7a6ee', 'walker-old', 'walker', 'f506b01edb6e53292445eabe1d8f5a43072096f8aa9f4f654c6ef5010c72c443', '2026-12-02T16:41:10.083310+00:00', NULL, NULL, '2026-12-02T16:41:10.083310+00:00');
INSERT INTO devices (id, name, role, token_hash, created_at, last_seen, revoked_at, token_at) VALUES ('53222538693e4d97b3bfbed80a41c035', 'manager-old', 'manager', '6a0de60b3b00d845d372c4421ec78981c66598bd9807744961a1ac5bd0d4d7f2', '2026-12-02T16:41:10.084056+00:00', NULL, NULL, '2026-12-02T16:41:10.084056+00:00');
INSERT INTO devices (id, name, role, token_hash, created_at, last_seen, revoked_at, token_at) VALUES ('ce4a7727413f427ca0832c2619b048a9', 'gone', 'walker', 'revoked:ce4a7727413f427ca0832c2619b048a9:fc2442733f03f9cf', '2026-12-02T16:41:10.084477+00:00', NULL, '2026-12-02T16:41:10.086299+00:00', '2026-12-02T16:41:10.084477+00:00');
INSERT INTO sessions (id, device_id, walker, label, created_at, confirmed_at) VALUES ('77666284c815407f97c9f07cc8813d4c', 'd769b30600f14f51aa96400d2df7a6ee', 'walker-old', 'round 1', '2026-12-02T16:41:10.087049+00:00', NULL);
INSERT INTO counts (id, session_id, device_id, client_id, source, location, photo_hash, photo_bytes, status, attempts, error_code, error_message, result_json, created_at, updated_at, finished_at, confirmed_at, confirmed_by, photo_purged_at, bay_id, replaces, part_of, superseded_by, location_choice, recount_note, recount_by, recount_at) VALUES ('8bd89b2ae87a4a119df311704832ca47', '77666284c815407f97c9f07cc8813d4c', 'd769b30600f14f51aa96400d2df7a6ee', 'photo-0', 'ws', 'A-01-1', '0000000000000000000000000000000000000000000000000000000000000000', 1000, 'done', 0, NULL, NULL, '{"rows": [{"Location": "A-01-1", "SKU": "SKU-10001", "Product_Description": "p", "Quantity_Counted": 4, "Unit_Price": "1.00", "Total_Value": "4.00", "Condition": "Good", "Expiration_Date": "", "Last_Updated": "2026-12-01T10:00:00Z", "Count_Confidence": 0.9}], "boxes": [], "codes": []}', '2026-12-02T16:41:10.088459+00:00', '2026-12-02T16:41:10.097391+00:00', '2026-12-02T16:41:10.089631+00:00', '2026-12-02T16:41:10.097391+00:00', 'walker-old', NULL, '8bd89b2ae87a4a119df311704832ca47', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO counts (id, session_id, device_id, client_id, source, location, photo_hash, photo_bytes, status, attempts, error_code, error_message, result_json, created_at, updated_at, finished_at, confirmed_at, confirmed_by, photo_purged_at, bay_id, replaces, part_of, superseded_by, location_choice, recount_note, recount_by, recount_at) VALUES ('7716291e06fa4b3d92d45f19c903d2cb', '77666284c815407f97c9f07cc8813d4c', 'd769b30600f14f51aa96400d2df7a6ee', 'photo-1', 'ws', 'A-01-2', '0000000000000000000000000000000000000000000000000000000000000001', 1001, 'done', 0, NULL, NULL, '{"rows": [{"Location": "A-01-2", "SKU": "SKU-10001", "Product_Description": "p", "Quantity_Counted": 7, "Unit_Price": "1.00", "Total_Value": "7.00", "Condition": "Good", "Expiration_Date": "", "Last_Updated": "2026-12-01T10:00:00Z", "Count_Confidence": 0.9}], "boxes": [], "codes": []}', '2026-12-02T16:41:10.091095+00:00', '2026-12-02T16:41:10.098501+00:00', '2026-12-02T16:41:10.091661+00:00', '2026-12-02T16:41:10.098501+00:00', 'walker-old', NULL, '7716291e06fa4b3d92d45f19c903d2cb', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO counts (id, session_id, device_id, client_id, source, location, photo_hash, photo_bytes, status, attempts, error_code, error_message, result_json, created_at, updated_at, finished_at, confirmed_at, confirmed_by, photo_purged_at, bay_id, replaces, part_of, superseded_by, location_choice, recount_note, recount_by, recount_at) VALUES ('e0c2c36eb72e475ab2bf6a650ff3baf3', '77666284c815407f97c9f07cc8813d4c', 'd769b30600f14f51aa96400d2df7a6ee', 'photo-2', 'ws', 'A-01-3', '0000000000000000000000000000000000000000000000000000000000000002', 1002, 'done', 0, NULL, NULL, '{"rows": [{"Location": "A-01-3", "SKU": "SKU-10001", "Product_Description": "p", "Quantity_Counted": 2, "Unit_Price": "1.00", "Total_Value": "2.00", "Condition": "Good", "Expiration_Date": "", "Last_Updated": "2026-12-01T10:00:00Z", "Count_Confidence": 0.9}], "boxes": [], "codes": []}', '2026-12-02T16:41:10.092211+00:00', '2026-12-02T16:41:10.092768+00:00', '2026-12-02T16:41:10.092768+00:00', NULL, NULL, NULL, 'e0c2c36eb72e475ab2bf6a650ff3baf3', NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO corrections (id, count_id, location, sku, model_quantity, quantity, row_json, by_device, by_name, corrected_at, row_condition, client_id) VALUES ('a3cef922e9be4922ac8d76ee93b4d54b', '8bd89b2ae87a4a119df311704832ca47', 'A-01-1', 'SKU-10001', 4, 5, '{"Location": "A-01-1", "SKU": "SKU-10001", "Product_Description": "p", "Quantity_Counted": 5, "Unit_Price": "1.00", "Total_Value": "5.00", "Condition": "Damaged", "Expiration_Date": "", "Last_Updated": "2026-12-02T16:41:10.094902Z", "Count_Confidence": 1.0}', 'd769b30600f14f51aa96400d2df7a6ee', 'walker-old', '2026-12-02T16:41:10.094902+00:00', 'Damaged', 'fix-1');
INSERT INTO outbox (id, count_id, session_id, walker, location, rows_json, created_at, revises) VALUES ('ddadad5f5cca4262b2605f9a9384b068', '8bd89b2ae87a4a119df311704832ca47', '77666284c815407f97c9f07cc8813d4c', 'walker-old', 'A-01-1', '[{"Location": "A-01-1", "SKU": "SKU-10001", "Product_Description": "p", "Quantity_Counted": 5, "Unit_Price": "1.00", "Total_Value": "5.00", "Condition": "Damaged", "Expiration_Date": "", "Last_Updated": "2026-12-02T16:41:10.094902Z", "Count_Confidence": 1.0}]', '2026-12-02T16:41:10.097391+00:00', NULL);
INSERT INTO outbox (id, count_id, session_id, walker, location, rows_json, created_at, revises) VALUES ('99d92be9c4734633986847ce74d5d339', '7716291e06fa4b3d92d45f19c903d2cb', '77666284c815407f97c9f07cc8813d4c', 'walker-old', 'A-01-2', '[{"Location": "A-01-2", "SKU": "SKU-10001", "Product_Description": "p", "Quantity_Counted": 7, "Unit_Price": "1.00", "Total_Value": "7.00", "Condition": "Good", "Expiration_Date": "", "Last_Updated": "2026-12-01T10:00:00Z", "Count_Confidence": 0.9}]', '2026-12-02T16:41:10.098501+00:00', NULL);
INSERT INTO outbox_delivery (entry_id, sink, attempts, delivered_at, last_error, retry_at) VALUES ('ddadad5f5cca4262b2605f9a9384b068', 'sheets', 1, '2026-12-02T16:41:10.099542+00:00', NULL, NULL);
