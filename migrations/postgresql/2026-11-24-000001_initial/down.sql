DROP TABLE audit_events;
DROP TABLE signing_keys;
DROP TABLE sessions;
DROP TABLE clients;
DROP TABLE one_time_passwords;
DROP TABLE accounts;
DROP TABLE people;
DROP TABLE agencies;
