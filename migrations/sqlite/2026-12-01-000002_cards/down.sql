-- The released bindings are not restored: they were made without proof of the account.
SELECT 1;
