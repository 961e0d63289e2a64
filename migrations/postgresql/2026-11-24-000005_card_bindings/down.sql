ALTER TABLE sessions DROP COLUMN acting_agency;
DROP TABLE card_bindings;
