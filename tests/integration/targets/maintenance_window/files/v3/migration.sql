INSERT INTO applied VALUES ('0001-v3'); CREATE TABLE t3 (x); SELECT * FROM no_such_table;
