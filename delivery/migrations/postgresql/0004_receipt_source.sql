-- Who a receipt is about (the deliver_sm's source address, as E.164): a receipt whose message id
-- a crash kept from being recorded is matched to its attempt by the recipient instead.
ALTER TABLE receipts ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT '';
CREATE INDEX IF NOT EXISTS receipts_by_source ON receipts (source, at);
