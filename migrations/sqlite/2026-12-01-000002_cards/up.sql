-- Agency cards name no person, and until now the identify step bound one to whatever account was
-- typed, without that account's password. No agency-card binding made under that rule can be
-- trusted, and the table does not record how each was made: release them all. HR staff bind their
-- agency's card again, with their own password at the identify step or from 我的專區.
DELETE FROM card_bindings WHERE kind = 'agency';
