-- Fails: there is no such table.
UPDATE no_such_table SET x = 1;
