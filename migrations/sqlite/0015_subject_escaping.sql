-- Subject names are stored RFC 4514-escaped from now on (issue 20: a value holding ", O=…" was
-- shown, searched and compared as if it were another attribute). Rows written before hold the
-- old, unescaped text; this lists them once, and the service re-renders each from its DER at
-- start-up and crosses it off (`Store::rewrite_legacy_subjects`). Rows written after this
-- migration are escaped already and never listed. Keep in step with the other backend's 0015.
CREATE TABLE subject_rewrites (
    tbl  TEXT NOT NULL,   -- certificates | cas | trusted_roots
    k1   TEXT NOT NULL,   -- issuer_id | id | id
    k2   TEXT NOT NULL,   -- serial_hex | '' | ''
    PRIMARY KEY (tbl, k1, k2)
);
INSERT INTO subject_rewrites (tbl, k1, k2) SELECT 'certificates', issuer_id, serial_hex FROM certificates;
INSERT INTO subject_rewrites (tbl, k1, k2) SELECT 'cas', id, '' FROM cas;
INSERT INTO subject_rewrites (tbl, k1, k2) SELECT 'trusted_roots', id, '' FROM trusted_roots;
