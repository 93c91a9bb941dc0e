-- Customer returns (`restock` false: not resellable, sellable stock unchanged) and signed
-- adjustments (`quantity` carries its sign), each with an optional note.
ALTER TABLE movements ADD COLUMN restock boolean, ADD COLUMN note text;
