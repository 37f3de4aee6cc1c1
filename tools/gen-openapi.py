#!/usr/bin/env python3
"""Writes api/openapi.yaml. The EST/OPCP aliases repeat per CA domain, so they are generated;
edit this script (not the YAML) and rerun: python3 tools/gen-openapi.py > api/openapi.yaml"""

import json

DOMAINS = {
    "cpo": ("secc-leaf", "cpo", "SECC (EVSE) certificate; CSR CN must be an EVSE ID within the caller's operator tenants"),
    "mo": ("contract", "mo", "Contract certificate; CSR CN must be an EMAID within the caller's provider tenants"),
    "oem": ("oem-provisioning", "oem", "OEM provisioning certificate; CSR CN must be a PCID with one of the caller's WMIs"),
    "cps": ("cps-leaf", "cps", "CPS leaf certificate"),
}

out = []
w = out.append

w("""openapi: 3.1.0
info:
  title: pnc-pki
  version: 0.1.0
  description: |
    Plug & Charge (ISO 15118) PKI service. OPCP (Hubject dialect) routes answer errors as
    `{"errorMessages": [...], "traceId": "...", "code": "..."}`; `/api/v1` routes answer RFC 9457
    `application/problem+json` with a stable `code`. Every response carries `X-Request-Id`
    (the same value as `traceId`). Paths tolerate doubled slashes and a trailing slash.
servers:
  - url: http://127.0.0.1:8080
security:
  - bearer: []
  - apiKey: []
paths:""")

def op(method, summary, *, public=False, tags=None, params=(), body=None, responses):
    w(f"    {method}:")
    w(f"      summary: {json.dumps(summary)}")
    if tags:
        w(f"      tags: [{tags}]")
    if public:
        w("      security: []")
    if params:
        w("      parameters:")
        for p in params:
            name, where, schema, required = p
            w(f"        - name: {name}")
            w(f"          in: {where}")
            w(f"          required: {'true' if required else 'false'}")
            w(f"          schema: {schema}")
    if body:
        w("      requestBody:")
        w("        required: true")
        w("        content:")
        for ctype, schema in body:
            w(f"          {ctype}:")
            w(f"            schema: {schema}")
    w("      responses:")
    for code, desc, content in responses:
        w(f"        '{code}':")
        w(f"          description: {json.dumps(desc)}")
        if content:
            w("          content:")
            for ctype, schema in content:
                w(f"            {ctype}:")
                w(f"              schema: {schema}")

def path(p):
    w(f"  {p}:")

OPCP_ERR = [("application/json", "{$ref: '#/components/schemas/OpcpError'}")]
PROBLEM = [("application/problem+json", "{$ref: '#/components/schemas/Problem'}")]
PKCS7 = [("application/pkcs7-mime", "{type: string, description: base64 DER PKCS#7 certs-only}")]
# 429: the caller's address spent its authentication-failure budget (too_many_failures), or a
# per-client limit (rate_limited); Retry-After says when to come back (docs/security.md).
AUTH_ERRS_OPCP = [("401", "missing or invalid token", OPCP_ERR), ("403", "wrong role or tenant", OPCP_ERR),
                  ("429", "too_many_failures (this address) or rate_limited (this client); Retry-After", OPCP_ERR)]
AUTH_ERRS = [("401", "missing or invalid token", PROBLEM), ("403", "wrong role or tenant", PROBLEM),
             ("429", "too_many_failures (this address) or rate_limited (this client); Retry-After", PROBLEM)]

path("/health/live")
op("get", "Liveness", public=True, tags="operations", responses=[("200", "alive", [("application/json", "{type: object}")])])
path("/health/ready")
op("get", "Readiness: the token signs and the store writes (probed at most once a second)", public=True, tags="operations",
   responses=[("200", "ready", [("application/json", "{type: object}")]), ("503", "not ready", [("application/json", "{type: object}")])])
path("/metrics")
op("get", "Prometheus metrics", public=True, tags="operations", responses=[("200", "text exposition", [("text/plain", "{type: string}")])])
path("/api/openapi.yaml")
op("get", "This document", public=True, tags="operations", responses=[("200", "OpenAPI 3.1", [("application/yaml", "{type: string}")])])

path("/oauth/token")
op("post", "OAuth2 client credentials token (JSON, form or HTTP Basic)", public=True, tags="auth",
   body=[("application/json", "{$ref: '#/components/schemas/TokenRequest'}"),
         ("application/x-www-form-urlencoded", "{$ref: '#/components/schemas/TokenRequest'}")],
   responses=[("200", "access token (ES256 JWT)", [("application/json", "{$ref: '#/components/schemas/TokenResponse'}")]),
              ("400", "invalid_request / unsupported_grant_type", [("application/json", "{$ref: '#/components/schemas/OAuthError'}")]),
              ("401", "invalid_client", [("application/json", "{$ref: '#/components/schemas/OAuthError'}")]),
              ("429", "rate_limited (per address or client_id) or too_many_failures; Retry-After", [("application/json", "{$ref: '#/components/schemas/OAuthError'}")]),
              ("503", "busy: every secret-verification slot is taken; Retry-After", [("application/json", "{$ref: '#/components/schemas/OAuthError'}")])])
path("/oauth/jwks.json")
op("get", "Public key(s) of our access tokens", public=True, tags="auth", responses=[("200", "JWKS", [("application/json", "{type: object}")])])

ISO = ("iso", "path", "{type: string, enum: [ISO15118-2, ISO15118-20]}", True)
ALG = ("alg", "path", "{type: string}", True)
# A retry with the same key and body (same client, within 24 h) answers the first certificate.
IDEM = ("Idempotency-Key", "header", "{type: string, minLength: 1, maxLength: 255, description: 'retry-safe enrollment: the same key and body within 24 h return the first certificate; another body with the key is 409 idempotency_key_reused'}", False)
# Revocation: bound to the certificate and the reason; a retry answers the first outcome.
IDEM_REVOKE = ("Idempotency-Key", "header", "{type: string, minLength: 1, maxLength: 255, description: 'retry-safe revocation: the same key, certificate and reason within 24 h answer what the first call answered (status and body, e.g. outcome revoked, not already_revoked), with no second audit entry; another certificate or reason with the key is 409 idempotency_key_reused'}", False)
# Contract provisioning: bound to the route and the body; a retry answers the first bytes.
IDEM_PROVISION = ("Idempotency-Key", "header", "{type: string, minLength: 1, maxLength: 255, description: 'retry-safe provisioning: the same key and body within 24 h return the first answer byte for byte (kept with the key for 24 h) and issue no second certificate; another body or route with the key is 409 idempotency_key_reused'}", False)
IDEM_409 = ("409", "idempotency_key_reused: the Idempotency-Key came with another request", OPCP_ERR)
for d, (profile, role, desc) in DOMAINS.items():
    enroll = dict(tags="opcp",
                  body=[("application/pkcs10", "{type: string, description: base64 DER PKCS#10 (line breaks tolerated)}")],
                  responses=[("200", "leaf first, then the issuing sub-CAs", PKCS7),
                             ("400", "malformed CSR or profile violation", OPCP_ERR)] + AUTH_ERRS_OPCP +
                            [("409", "idempotency_key_reused: the Idempotency-Key came with another request", OPCP_ERR),
                             ("413", "body too large", OPCP_ERR)])
    for p, params in [(f"/{d}/simpleenroll/{{iso}}", [ISO, IDEM]), (f"/.well-known/est/{d}/simpleenroll/{{iso}}", [ISO, IDEM]),
                      (f"/.well-known/{d}/simpleenroll", [IDEM]), (f"/.well-known/est/{d}/simpleenroll", [IDEM])]:
        path(p)
        op("post", f"Enroll ({profile}; role {role}). {desc}. Without {{iso}}: ISO15118-2", params=params, **enroll)
    for p, params in [(f"/{d}/cacerts/{{iso}}", [ISO]), (f"/{d}/cacerts/{{iso}}/{{alg}}", [ISO, ALG]),
                      (f"/.well-known/est/{d}/cacerts/{{iso}}", [ISO]), (f"/.well-known/{d}/cacerts", []),
                      (f"/.well-known/est/{d}/cacerts", [])]:
        path(p)
        op("get", f"CA chain for {profile}: sub-CA 2, sub-CA 1, root (root last)", public=True, tags="opcp", params=params,
           responses=[("200", "PKCS#7 certs-only", PKCS7), ("400", "unknown ISO version", OPCP_ERR)])

# The standard RFC 7030 tree: labels cpo..cps share the Hubject-dialect routes above; csms and
# charging-station (OCPP) are added here, and every label has simplereenroll and csrattrs.
EST_LABELS = {
    "cpo": "secc-leaf", "mo": "contract", "oem": "oem-provisioning", "cps": "cps-leaf",
    "csms": "csms-server", "charging-station": "charging-station",
}
CSRATTRS = [("application/csrattrs", "{type: string, description: base64 DER CsrAttrs (RFC 7030 §4.5.2)}")]
for label, profile in EST_LABELS.items():
    if label in ("csms", "charging-station"):
        role_desc = ("CSMS TLS server certificate; subject O must be one of the caller's organizations, every SAN on its dns:/ip: allow-list"
                     if label == "csms" else
                     "charging-station TLS client certificate; subject O must be one of the caller's organizations")
        path(f"/.well-known/est/{label}/simpleenroll")
        op("post", f"RFC 7030 simpleenroll ({profile}; role csms). {role_desc}", tags="est",
           body=[("application/pkcs10", "{type: string, description: base64 DER PKCS#10 (line breaks tolerated)}")],
           responses=[("200", "leaf first, then the issuing sub-CAs", PKCS7),
                      ("400", "malformed CSR or profile violation", OPCP_ERR)] + AUTH_ERRS_OPCP +
                     [("413", "body too large", OPCP_ERR)])
        path(f"/.well-known/est/{label}/cacerts")
        op("get", f"RFC 7030 cacerts: CA chain for {profile}, issuing CA first, root last", public=True, tags="est",
           responses=[("200", "PKCS#7 certs-only", PKCS7)])
    path(f"/.well-known/est/{label}/simplereenroll")
    op("post", f"RFC 7030 simplereenroll ({profile}): authenticated by the current certificate over mutual TLS; same subject; the old certificate is revoked as superseded after PNC_SUPERSEDE_GRACE", public=True, tags="est",
       body=[("application/pkcs10", "{type: string, description: base64 DER PKCS#10}")],
       responses=[("200", "leaf first, then the issuing sub-CAs", PKCS7),
                  ("400", "malformed CSR, subject_mismatch or profile violation", OPCP_ERR),
                  ("401", "client_certificate_required: no, an unknown, a revoked or an expired client certificate", OPCP_ERR),
                  ("403", "the certificate is of another profile", OPCP_ERR),
                  ("429", "rate_limited", OPCP_ERR)])
    path(f"/.well-known/est/{label}/csrattrs")
    op("get", f"RFC 7030 csrattrs for {profile}: key types, signature algorithms, subjectAltName wanted", public=True, tags="est",
       responses=[("200", "CsrAttrs", CSRATTRS)])

path("/v1/root/rootCerts")
op("get", "OPCP root certificate pool", public=True, tags="opcp",
   params=[("rootType", "query", "{type: string, enum: [V2G, MO, OEM]}", False)],
   responses=[("200", "roots", [("application/json", "{$ref: '#/components/schemas/RootCertificateCollection'}")]),
              ("400", "bad rootType", OPCP_ERR)])

path("/v1/root/rootCerts/{id}")
op("get", "One root of the OPCP pool", public=True, tags="opcp",
   params=[("id", "path", "{type: string, description: rootCertificateId}", True)],
   responses=[("200", "root", [("application/json", "{type: object, properties: {RootResponse: {type: object}}}")]),
              ("404", "unknown id", OPCP_ERR)])

OCSP_REQ = [("application/ocsp-request", "{type: string, format: binary, description: DER OCSPRequest (RFC 6960), at most 4 KiB}")]
OCSP_RESP = [("application/ocsp-response", "{type: string, format: binary, description: DER OCSPResponse; errors are OCSP statuses (malformedRequest, unauthorized, ...)}")]
# A hex-text request body (CitrineOS sends getEncodedHex()) is answered in hex text.
OCSP_REQ = OCSP_REQ + [("text/plain", "{type: string, description: the DER OCSPRequest as hex text (CitrineOS)}")]
OCSP_POST_RESP = OCSP_RESP + [("text/plain", "{type: string, description: the DER OCSPResponse as hex text, for a hex-text request}")]
for p, params in [("/ocsp", []), ("/ocsp/", [])]:
    path(p)
    op("get", "OCSP responder base URL (GET without a request answers malformedRequest)", public=True, tags="ocsp", responses=[("200", "OCSP response", OCSP_RESP)])
    op("post", "OCSP request (RFC 6960 appendix A.1, the URL written into every certificate's AIA)", public=True, tags="ocsp",
       body=OCSP_REQ, responses=[("200", "OCSP response (pre-produced, or freshly signed when the request has a nonce)", OCSP_POST_RESP)])
path("/ocsp/{request}")
op("get", "OCSP request as base64 (URL-encoded or plain) in the path, RFC 5019; cacheable (Cache-Control, ETag, Last-Modified, Expires)", public=True, tags="ocsp",
   params=[("request", "path", "{type: string}", True)], responses=[("200", "OCSP response", OCSP_RESP)])
op("post", "OCSP request (POST to a path below /ocsp/)", public=True, tags="ocsp",
   params=[("request", "path", "{type: string}", True)], body=OCSP_REQ, responses=[("200", "OCSP response", OCSP_POST_RESP)])
path("/api/v1/ocsp/certificate-status")
op("post", "OCPP 2.0.1 GetCertificateStatus: ocspRequestData (hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber, responderURL) -> {status, ocspResult}", tags="ocsp",
   body=[("application/json", "{type: object}")],
   responses=[("200", "GetCertificateStatusResponse", [("application/json", "{type: object}")]), ("400", "bad request", [("application/json", "{type: object}")])] + AUTH_ERRS)
path("/api/v1/ocsp/chain-status")
op("post", "OCPP 2.1 GetCertificateChainStatus -> Good|Revoked|Unknown|Failed with nextUpdate", tags="ocsp",
   body=[("application/json", "{type: object}")],
   responses=[("200", "GetCertificateChainStatusResponse", [("application/json", "{type: object}")]), ("400", "bad request", [("application/json", "{type: object}")])] + AUTH_ERRS)

path("/crl/{file}")
op("get", "CRL of one key of a CA, DER (file = {ca_id}.crl for its first key, {ca_id}.g{N}.crl for its N-th after `ca rollover`)", public=True, tags="crl",
   params=[("file", "path", "{type: string, examples: [cpo-sub-ca-2.crl, cpo-sub-ca-2.g2.crl]}", True)],
   responses=[("200", "DER CRL", [("application/pkix-crl", "{type: string, format: binary}")]), ("404", "unknown CA", OPCP_ERR)])

CERT_FILTERS = [("issuer_id", "query", "{type: string}", False), ("profile", "query", "{type: string}", False),
                ("emaid", "query", "{type: string}", False), ("evse_id", "query", "{type: string}", False),
                ("pcid", "query", "{type: string}", False),
                ("status", "query", "{type: string, enum: [valid, revoked, expired]}", False),
                ("serial_hex", "query", "{type: string}", False), ("expiring_before", "query", "{type: integer, description: unix seconds}", False),
                ("tenant", "query", "{type: string}", False), ("after", "query", "{type: string, description: cursor from next}", False),
                ("limit", "query", "{type: integer, minimum: 1, maximum: 1000}", False)]
path("/api/v1/certificates")
op("get", "Search certificates (own tenant unless admin); keyset pagination", tags="native", params=CERT_FILTERS,
   responses=[("200", "page", [("application/json", "{$ref: '#/components/schemas/CertificateList'}")]), ("400", "bad query", PROBLEM)] + AUTH_ERRS)
IDS = [("issuer_id", "path", "{type: string}", True), ("serial_hex", "path", "{type: string}", True)]
path("/api/v1/certificates/{issuer_id}/{serial_hex}")
op("get", "One certificate: JSON, PEM (Accept application/x-pem-file) or DER (application/pkix-cert)", tags="native", params=IDS,
   responses=[("200", "certificate", [("application/json", "{$ref: '#/components/schemas/Certificate'}"),
                                      ("application/x-pem-file", "{type: string}"),
                                      ("application/pkix-cert", "{type: string, format: binary}")]),
              ("404", "not found", PROBLEM)] + AUTH_ERRS)
path("/api/v1/certificates/{issuer_id}/{serial_hex}/revoke")
op("post", "Revoke (idempotent; tenant-checked)", tags="native", params=IDS + [IDEM_REVOKE],
   body=[("application/json", "{$ref: '#/components/schemas/RevokeRequest'}")],
   responses=[("200", "revoked or already revoked", [("application/json", "{type: object}")]),
              ("400", "malformed JSON or unknown reason", PROBLEM), ("404", "not found", PROBLEM),
              ("409", "idempotency_key_reused: the Idempotency-Key came with another certificate or reason", PROBLEM)] + AUTH_ERRS)
path("/api/v1/cas")
op("get", "List CAs", tags="native", responses=[("200", "CAs", [("application/json", "{type: object}")])] + AUTH_ERRS)
path("/api/v1/cas/{id}/chain")
op("get", "Chain of a CA (that CA first, root last); JSON or PEM", tags="native",
   params=[("id", "path", "{type: string}", True)],
   responses=[("200", "chain", [("application/json", "{type: object}"), ("application/x-pem-file", "{type: string}")]),
              ("404", "unknown CA", PROBLEM)] + AUTH_ERRS)
path("/api/v1/clients")
op("get", "List API clients (admin, auditor)", tags="admin", responses=[("200", "clients", [("application/json", "{type: object}")])] + AUTH_ERRS)
op("post", "Register an API client (admin); the secret is returned once", tags="admin",
   body=[("application/json", "{$ref: '#/components/schemas/NewClient'}")],
   responses=[("201", "created", [("application/json", "{type: object}")]), ("400", "invalid input", PROBLEM),
              ("409", "already_registered: that certificate is bound to another client", PROBLEM)] + AUTH_ERRS)
path("/api/v1/clients/{client_id}")
op("delete", "Disable an API client (admin)", tags="admin", params=[("client_id", "path", "{type: string}", True)],
   responses=[("204", "disabled", None), ("404", "unknown client", PROBLEM)] + AUTH_ERRS)
path("/api/v1/audit")
op("get", "The audit log in seq order, a page at a time (admin, auditor); `next` is the cursor for `after`", tags="admin",
   params=[("after", "query", "{type: integer, minimum: 0, description: entries with a larger seq}", False),
           ("action", "query", "{type: string, maxLength: 64, description: action prefix, e.g. certificate. or crl.issued}", False),
           ("limit", "query", "{type: integer, minimum: 1, maximum: 1000, default: 100}", False)],
   responses=[("200", "page", [("application/json", "{$ref: '#/components/schemas/AuditPage'}")]), ("400", "bad query", PROBLEM)] + AUTH_ERRS)

CCP_RES = [("application/json", "{$ref: '#/components/schemas/CCPResponse'}")]
CCP_FAIL = [("application/json", "{oneOf: [{$ref: '#/components/schemas/OpcpError'}, {$ref: '#/components/schemas/CCPResponse'}]}")]
path("/v1/ccp/signedContractData")
op("post", "Get Signed Contract Data (OPCP CCP): an EV's CertificateInstallationReq or CertificateUpdateReq (ISO 15118-2 or -20, told from the EXI) -> a signed answer with a new contract certificate and its key encrypted for the car. Header alwaysReturnEXI (default true): refusals that could be addressed to the EV also carry a FAILED certificateInstallationRes", tags="opcp",
   params=[("alwaysReturnEXI", "header", "{type: boolean, default: true}", False), IDEM_PROVISION],
   body=[("application/json", "{$ref: '#/components/schemas/CCPRequest'}")],
   responses=[("200", "exactly one emaidContent item for -2", CCP_RES),
              ("400", "exi_invalid, signature_invalid, oem_untrusted, oem_certificate_expired, oem_revoked, contract_revoked, action_mismatch", CCP_FAIL),
              ("404", "no_contract, contract_cancelled, no_matching_root", CCP_FAIL), IDEM_409,
              ("500", "response_too_large: over PNC_PROVISIONING_MAX_CHARS_ISO2/ISO20; nothing issued", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/v1/cps/generate/signedContractData")
op("put", "Pre-generate contract data (OPCP CPS, MO without own PKI): key, contract certificate, encrypted key and CPS signature made now for the vehicle in the provisioning pool; installation then only sets the live SessionID (no HSM call). Creates the contract when the EMAID has none; ISO 15118-2", tags="opcp",
   params=[IDEM_PROVISION],
   body=[("application/json", "{$ref: '#/components/schemas/GenerateContractData'}")],
   responses=[("201", "pre-generated", [("application/json", "{type: object}")]),
              ("400", "bad_emaid, bad_pcid, bad_validity, unsupported_namespace, oem_untrusted", OPCP_ERR),
              ("404", "the PCID is not in the provisioning pool", OPCP_ERR),
              ("409", "the EMAID has an active contract for another vehicle, or idempotency_key_reused: the Idempotency-Key came with another request", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/v1/ccp/signedContractData/{key}")
op("get", "Contracts of a vehicle: key = PCID (OEM of its WMI; an MO sees its own)", tags="opcp",
   params=[("key", "path", "{type: string, description: PCID}", True)],
   responses=[("200", "XMLContracts", [("application/json", "{type: object}")]), ("404", "no contract", OPCP_ERR)] + AUTH_ERRS_OPCP)
op("delete", "Delete pre-generated contract data: key = EMAID (MO); its certificate is revoked unless X-Skip-Revocation: true", tags="opcp",
   params=[("key", "path", "{type: string, description: EMAID}", True), ("X-Skip-Revocation", "header", "{type: boolean, default: false}", False)],
   responses=[("204", "deleted", None), ("404", "no contract or no pre-generated data", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/v1/cps/contractData/signed")
op("put", "Contract data of an MO with its own PKI (contract certificate chaining to a trusted MO root, key encrypted by the MO for the car): signed with our CPS key and kept for delivery; ISO 15118-2", tags="opcp",
   body=[("application/json", "{$ref: '#/components/schemas/OwnContractData'}")],
   responses=[("201", "accepted", [("application/json", "{type: object}")]),
              ("400", "bad_certificate, bad_emaid, bad_contract_data, untrusted_chain, certificate_expired, unsupported_namespace", OPCP_ERR),
              ("409", "the EMAID has an active contract for another vehicle", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/v1/ccp/lookupContract/{emaid}")
op("get", "Contracts of an EMAID with their current contract certificate (MO tenant)", tags="opcp",
   params=[("emaid", "path", "{type: string}", True)],
   responses=[("200", "XMLContracts", [("application/json", "{type: object}")]), ("404", "no contract", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/api/v1/ocpp/get-15118-ev-certificate")
op("post", "OCPP 2.0.1/2.1 Get15118EVCertificateRequest -> Get15118EVCertificateResponse; refusals are status Failed with statusInfo.reasonCode", tags="ocpp",
   params=[IDEM_PROVISION],
   body=[("application/json", "{$ref: '#/components/schemas/Get15118EVCertificateRequest'}")],
   responses=[("200", "Accepted with exiResponse, or Failed with statusInfo", [("application/json", "{$ref: '#/components/schemas/Get15118EVCertificateResponse'}")]),
              ("400", "malformed JSON, fields out of the OCPP bounds, or invalid_idempotency_key", PROBLEM),
              ("409", "idempotency_key_reused: the Idempotency-Key came with another request", PROBLEM)] + AUTH_ERRS)
path("/api/v1/ocpp/sign-certificate")
op("post", "OCPP 2.0.1/2.1 SignCertificateRequest relayed by a CSMS (role csms) plus the stationId it authenticated -> the CertificateSignedRequest body to send on. ChargingStationCertificate: CN must be stationId, O one of the caller's organizations; V2GCertificate / V2G20Certificate: CN an EVSE ID / SECCID of the caller's operator prefixes. certificateType omitted: PNC_OCPP_DEFAULT_CERTIFICATE_TYPE (ChargingStationCertificate). Refusals: status Rejected with statusInfo", tags="ocpp",
   params=[IDEM],
   body=[("application/json", "{$ref: '#/components/schemas/SignCertificateRequest'}")],
   responses=[("200", "issued", [("application/json", "{$ref: '#/components/schemas/CertificateSignedRequest'}")]),
              ("409", "idempotency_key_reused: the Idempotency-Key came with another station, type or CSR", PROBLEM),
              ("400", "Rejected: malformed JSON or CSR, station_id_mismatch, profile_violation (key, subject, CA:TRUE), root_hash_mismatch, unknown_certificate_type", [("application/json", "{$ref: '#/components/schemas/SignCertificateRejected'}")]),
              ("401", "missing or invalid token", PROBLEM),
              ("403", "forbidden_role (problem), or Rejected forbidden_tenant: another CSO's station or operator", [("application/json", "{$ref: '#/components/schemas/SignCertificateRejected'}")]),
              ("429", "too_many_failures (this address) or rate_limited (this client); Retry-After", PROBLEM)])
path("/api/v1/ocpp/install-certificates")
op("get", "The InstallCertificateRequest bodies a CSMS pushes to a new station (CSMS, manufacturer, V2G and MO roots, ours and trusted external ones) and the CertificateHashDataChainType entries GetInstalledCertificateIds reports for them", tags="ocpp",
   params=[("stationId", "query", "{type: string, maxLength: 48}", True)],
   responses=[("200", "root set", [("application/json", "{$ref: '#/components/schemas/InstallCertificates'}")]),
              ("400", "invalid_station_id", PROBLEM)] + AUTH_ERRS)
path("/v1/oem/provCerts")
op("put", "Upload a vehicle's OEM provisioning certificate chain (OEM role, PCID WMI tenant); the chain must end in a trusted OEM root", tags="opcp",
   body=[("application/json", "{$ref: '#/components/schemas/ProvCertUpload'}")],
   responses=[("201", "stored", [("application/json", "{$ref: '#/components/schemas/OEMMessage'}")]),
              ("400", "bad_certificate, bad_pcid, untrusted_chain, certificate_expired", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/v1/oem/provCerts/{pcid}")
op("get", "A vehicle's OEM provisioning chain (OEM of that WMI, MO, auditor)", tags="opcp",
   params=[("pcid", "path", "{type: string}", True)],
   responses=[("200", "chain", [("application/json", "{$ref: '#/components/schemas/OEMMessage'}")]), ("404", "unknown PCID", OPCP_ERR)] + AUTH_ERRS_OPCP)
op("delete", "Remove a vehicle's OEM provisioning chain (OEM of that WMI)", tags="opcp",
   params=[("pcid", "path", "{type: string}", True)],
   responses=[("204", "removed", None), ("404", "unknown PCID", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/v1/oem/provCerts/lookupVehicle/{pcid}")
op("get", "Whether the pool knows a vehicle", tags="opcp",
   params=[("pcid", "path", "{type: string}", True)],
   responses=[("200", "known", [("application/json", "{type: object}")]), ("404", "unknown PCID", OPCP_ERR)] + AUTH_ERRS_OPCP)
path("/api/v1/contracts")
op("get", "Contracts of the caller's tenants (MO; auditor, admin: all)", tags="native",
   params=[("emaid", "query", "{type: string}", False), ("pcid", "query", "{type: string}", False),
           ("limit", "query", "{type: integer, minimum: 1, maximum: 1000, default: 100}", False)],
   responses=[("200", "contracts", [("application/json", "{$ref: '#/components/schemas/ContractList'}")]), ("400", "bad query", PROBLEM)] + AUTH_ERRS)
op("post", "Create a contract (MO; EMAID in the caller's tenants): binds an EMAID (normalised, check digit computed when absent) to a PCID", tags="native",
   body=[("application/json", "{$ref: '#/components/schemas/NewContract'}")],
   responses=[("201", "created", [("application/json", "{$ref: '#/components/schemas/Contract'}")]),
              ("400", "bad_emaid, bad_pcid, bad_validity, bad_issuer, bad_grace", PROBLEM),
              ("409", "already_registered: the EMAID has an active contract", PROBLEM)] + AUTH_ERRS)
path("/api/v1/contracts/{id}")
op("get", "A contract and the certificates issued under it", tags="native", params=[("id", "path", "{type: string}", True)],
   responses=[("200", "contract", [("application/json", "{$ref: '#/components/schemas/Contract'}")]), ("404", "unknown contract", PROBLEM)] + AUTH_ERRS)
op("delete", "Cancel a contract: its certificates are revoked (OCSP answers revoked when this returns); idempotent", tags="native",
   params=[("id", "path", "{type: string}", True),
           ("Idempotency-Key", "header", "{type: string, minLength: 1, maxLength: 255, description: 'retry-safe cancellation: the same key and contract within 24 h answer the revoked list of the first call (not an empty one), revoking whatever an interrupted first call left; another contract with the key is 409 idempotency_key_reused'}", False)],
   responses=[("200", "cancelled", [("application/json", "{$ref: '#/components/schemas/Contract'}")]), ("404", "unknown contract", PROBLEM),
              ("409", "idempotency_key_reused: the Idempotency-Key came with another contract", PROBLEM)] + AUTH_ERRS)

w("""components:
  securitySchemes:
    bearer:
      type: http
      scheme: bearer
      bearerFormat: JWT (ES256)
    apiKey:
      type: apiKey
      in: header
      name: X-API-Key
  schemas:
    Problem:
      type: object
      required: [type, title, status, code, detail, traceId]
      properties:
        type: {type: string}
        title: {type: string}
        status: {type: integer}
        code: {type: string}
        detail: {type: string}
        traceId: {type: string}
    OpcpError:
      type: object
      required: [errorMessages, traceId]
      properties:
        errorMessages: {type: array, items: {type: string}}
        traceId: {type: string}
        code: {type: string}
    OAuthError:
      type: object
      properties:
        error: {type: string}
        error_description: {type: string}
        traceId: {type: string}
    TokenRequest:
      type: object
      required: [grant_type]
      properties:
        grant_type: {type: string, const: client_credentials}
        client_id: {type: string}
        client_secret: {type: string}
        audience: {type: string, description: accepted and ignored}
        scope: {type: string}
    TokenResponse:
      type: object
      required: [access_token, token_type, expires_in, scope]
      properties:
        access_token: {type: string}
        token_type: {type: string, const: Bearer}
        expires_in: {type: integer}
        scope: {type: string}
    Certificate:
      type: object
      properties:
        issuer_id: {type: string}
        serial_hex: {type: string}
        profile: {type: string}
        subject: {type: string}
        emaid: {type: [string, 'null']}
        evse_id: {type: [string, 'null']}
        pcid: {type: [string, 'null']}
        not_before: {type: integer}
        not_after: {type: integer}
        status: {type: string, enum: [valid, revoked]}
        revoked_at: {type: [integer, 'null']}
        revocation_reason: {type: [string, 'null']}
        tenant: {type: [string, 'null']}
        created_at: {type: integer}
        issuer_generation: {type: integer, description: which key of the issuer signed it (1 = its first; one more per ca rollover)}
        pem: {type: string}
        crl_url: {type: string}
    CertificateList:
      type: object
      required: [items, next]
      properties:
        items: {type: array, items: {$ref: '#/components/schemas/Certificate'}}
        next: {type: [string, 'null']}
    RevokeRequest:
      type: object
      properties:
        reason:
          type: string
          enum: [unspecified, keyCompromise, cACompromise, affiliationChanged, superseded, cessationOfOperation, certificateHold, privilegeWithdrawn, aACompromise]
    NewClient:
      type: object
      required: [name, role]
      properties:
        name: {type: string}
        role: {type: string, enum: [cpo, mo, oem, cps, admin, auditor]}
        tenants: {type: array, items: {type: string}}
        certificate: {type: string, description: "PEM client certificate (extendedKeyUsage clientAuth) this client may also authenticate with over mutual TLS; bound by its SHA-256 fingerprint"}
    AuditEntry:
      type: object
      required: [seq, at, actor, action, subject, details, hash]
      properties:
        seq: {type: integer, description: position in the hash chain, from 1}
        at: {type: string, format: date-time}
        actor: {type: string, description: 'who acted: an API client by name beside its id, a console user, the CLI operator (its OS user, or local)', examples: ['api:Example CPO (pnc_0123abcd)', 'api:pnc_0123abcd', 'ui:alice', 'cli:alice', 'cli:local']}
        action: {type: string, examples: [certificate.issue, certificate.revoke, crl.issued, auth.denied]}
        subject: {type: string, description: what the action was applied to}
        details: {type: object}
        hash: {type: string, description: SHA-256 over the previous hash and this entry}
    AuditPage:
      type: object
      required: [items, next]
      properties:
        items: {type: array, items: {$ref: '#/components/schemas/AuditEntry'}}
        next: {type: [integer, 'null']}
    RootCertificateCollection:
      type: object
      properties:
        RootCertificateCollection:
          type: object
          properties:
            rootCertificates:
              type: array
              items:
                type: object
                properties:
                  rootCertificateId: {type: string}
                  distinguishedName: {type: string}
                  caCertificate: {type: string, description: base64 DER}
                  commonName: {type: string}
                  rootAuthorityKeyIdentifier: {type: string, description: base64}
                  rootIssuerSerialNumber: {type: string, description: hex}
                  validFrom: {type: string, format: date-time}
                  validTo: {type: string, format: date-time}
                  organizationName: {type: string}
                  rootType: {type: string, enum: [V2G, MO, OEM]}
                  fingerprint: {type: string, description: SHA-256 hex}
    CCPRequest:
      type: object
      required: [certificateInstallationReq, xsdMsgDefNamespace]
      properties:
        certificateInstallationReq: {type: string, description: base64 EXI as the EV sent it}
        xsdMsgDefNamespace: {type: string, maxLength: 128, description: informational; the schema is read from the EXI}
        metadata: {type: string}
    CCPResponse:
      type: object
      properties:
        CCPResponse:
          type: object
          properties:
            emaidContent:
              type: array
              items:
                type: object
                properties:
                  messageDef:
                    type: object
                    properties:
                      certificateInstallationRes: {type: string, description: base64 EXI (CertificateInstallationRes or CertificateUpdateRes)}
                      emaid: {type: string}
                      metaData: {type: string}
    Get15118EVCertificateRequest:
      type: object
      required: [iso15118SchemaVersion, action, exiRequest]
      properties:
        iso15118SchemaVersion: {type: string, maxLength: 50}
        action: {type: string, enum: [Install, Update]}
        exiRequest: {type: string, maxLength: 11000}
        maximumContractCertificateChains: {type: integer, minimum: 0}
        prioritizedEMAIDs: {type: array, maxItems: 8, items: {type: string, maxLength: 255}}
    Get15118EVCertificateResponse:
      type: object
      required: [status, exiResponse]
      properties:
        status: {type: string, enum: [Accepted, Failed]}
        exiResponse: {type: string}
        remainingContracts: {type: integer, description: only when the request used OCPP 2.1 fields}
        statusInfo:
          type: object
          properties:
            reasonCode: {type: string, maxLength: 20}
            additionalInfo: {type: string, maxLength: 512}
    SignCertificateRequest:
      type: object
      required: [stationId, csr]
      properties:
        stationId: {type: string, maxLength: 48, description: the station identity the CSMS authenticated}
        csr: {type: string, maxLength: 5500, description: PEM PKCS#10}
        certificateType: {type: string, enum: [ChargingStationCertificate, V2GCertificate, V2G20Certificate]}
        hashRootCertificate: {$ref: '#/components/schemas/CertificateHashData'}
        requestId: {type: integer}
        customData: {type: object}
    CertificateHashData:
      type: object
      required: [hashAlgorithm, issuerNameHash, issuerKeyHash, serialNumber]
      properties:
        hashAlgorithm: {type: string, enum: [SHA256, SHA384, SHA512]}
        issuerNameHash: {type: string, maxLength: 128}
        issuerKeyHash: {type: string, maxLength: 128}
        serialNumber: {type: string, maxLength: 40}
    CertificateSignedRequest:
      type: object
      required: [certificateChain, certificateType]
      properties:
        certificateChain: {type: string, maxLength: 10000, description: PEM, leaf first, then the sub-CAs (no root)}
        certificateType: {type: string, enum: [ChargingStationCertificate, V2GCertificate, V2G20Certificate]}
        requestId: {type: integer, description: only when the request carried one}
    SignCertificateRejected:
      type: object
      required: [status, statusInfo, code]
      properties:
        status: {type: string, enum: [Rejected]}
        statusInfo:
          type: object
          properties:
            reasonCode: {type: string, maxLength: 20}
            additionalInfo: {type: string, maxLength: 512}
        code: {type: string}
        traceId: {type: string}
    InstallCertificates:
      type: object
      properties:
        stationId: {type: string}
        installCertificateRequests:
          type: array
          items:
            type: object
            properties:
              certificateType: {type: string, enum: [CSMSRootCertificate, ManufacturerRootCertificate, V2GRootCertificate, MORootCertificate]}
              certificate: {type: string, description: PEM}
        certificateHashDataChain:
          type: array
          items:
            type: object
            properties:
              certificateType: {type: string}
              certificateHashData: {$ref: '#/components/schemas/CertificateHashData'}
    ProvCertUpload:
      type: object
      required: [vehicleCertificate]
      properties:
        vehicleCertificate: {type: string, description: base64 DER}
        subCA1Certificate: {type: string, description: base64 DER}
        subCA2Certificate: {type: string, description: base64 DER}
        xsdMsgDefNamespace: {type: string}
    OEMMessage:
      type: object
      properties:
        OEMMessage: {type: object}
    OwnContractData:
      type: object
      required: [contractData, pcid]
      properties:
        contractData:
          type: object
          required: [contractCertificate, contractSignatureEncryptedPrivateKey, dHpublickey]
          properties:
            contractCertificate: {type: string, description: base64 DER}
            contractSubCa1Certificate: {type: string, description: base64 DER}
            contractSubCa2Certificate: {type: string, description: base64 DER}
            contractSignatureEncryptedPrivateKey: {type: string, description: base64, 48 bytes}
            dHpublickey: {type: string, description: base64, 65 bytes}
        pcid: {type: string}
        xsdMsgDefNamespace: {type: string}
    GenerateContractData:
      type: object
      required: [emaid, pcid, xsdMsgDefNamespace]
      properties:
        emaid: {type: string}
        pcid: {type: string}
        contractBegins: {type: string, format: date-time}
        contractEnds: {type: string, format: date-time}
        xsdMsgDefNamespace: {type: string, description: urn:iso:15118:2:2013:MsgDef}
        metaData: {type: string}
    NewContract:
      type: object
      required: [emaid, pcid]
      properties:
        emaid: {type: string}
        pcid: {type: string}
        valid_from: {type: integer, description: unix seconds}
        valid_to: {type: integer, description: unix seconds; contract certificates expire no later}
        issuer_id: {type: string, description: MO sub-CA 2 to issue under}
        organization: {type: string, description: O of the contract certificates (default the issuer's)}
        grace_seconds: {type: integer, minimum: 0, maximum: 7776000, description: how long an updated certificate stays valid}
    Contract:
      type: object
      required: [id, emaid, pcid, status]
      properties:
        id: {type: string}
        emaid: {type: string}
        pcid: {type: string}
        tenant: {type: string}
        status: {type: string, enum: [active, cancelled]}
        created_at: {type: integer}
        cancelled_at: {type: [integer, 'null']}
    ContractList:
      type: object
      required: [items]
      properties:
        items: {type: array, items: {$ref: '#/components/schemas/Contract'}}""")
print("\n".join(out))
