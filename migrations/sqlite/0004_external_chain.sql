-- A CA signed by an issuer we do not hold (an offline V2G root, a PKI operator's sub-CA): the
-- issuer chain it was imported with, PEM, issuer first.
ALTER TABLE cas ADD COLUMN external_chain TEXT;
