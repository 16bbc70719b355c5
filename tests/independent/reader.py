#!/usr/bin/env python3
"""An independent reader of ravi vaults, written from docs/SPEC.md alone.

Uses only well-known packages: argon2-cffi (Argon2id), PyNaCl
(XChaCha20-Poly1305), cryptography (HKDF-SHA256, X25519), bech32 (the BIP 173
reference code), and the standard library (sqlite3, hmac, json).

    reader.py VAULT --passphrase-file F
        prints every identity's decrypted records as JSON
    reader.py VAULT --agent-key-file K --identity NAME
        opens one identity through its grant to the agent key
    --owner-key raviowner1...
        the pinned owner key the vault must carry

Before anything is opened, the owner's Ed25519 signatures (SPEC 4a) on the
header, on every identity's metadata and on every grant are verified, and the
vault head (SPEC 4c) against the identities and grants stored; each
identity's head (SPEC 4b) is checked against its whole record set.

Exit 0 on success; any authentication failure raises.
"""
import argparse
import base64
import hashlib
import hmac
import json
import sqlite3
import struct
import sys
import uuid

import argon2.low_level
import bech32
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt
from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

VERSION = b"\x01"
KIND_NAME_FIELD = {1: "domain", 2: "key", 3: "name"}


class AuthError(Exception):
    pass


def ad(*fields):
    """SPEC 4: each field as u16be(len) || bytes."""
    return b"".join(struct.pack(">H", len(f)) + f for f in fields)


def open_envelope(key, assoc, env):
    """SPEC 3: 0x01 || nonce(24) || ciphertext+tag."""
    if len(env) < 41 or env[0:1] != VERSION:
        raise AuthError("bad envelope")
    try:
        return crypto_aead_xchacha20poly1305_ietf_decrypt(env[25:], assoc, env[1:25], key)
    except Exception as e:  # nacl raises CryptoError
        raise AuthError("envelope failed to open") from e


def hkdf(ikm, info, salt=None):
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def ub(u):
    return uuid.UUID(u).bytes


def padme(n):
    """SPEC 5, version 0x02: Padme size of a plaintext of n bytes."""
    size = max(256, n + 4)
    e = size.bit_length() - 1
    s = e.bit_length()
    mask = (1 << (e - s)) - 1
    return (size + mask) & ~mask


def unpad(p, version=1):
    """SPEC 5: power-of-two buckets in version 0x01, Padme in 0x02."""
    (n,) = struct.unpack(">I", p[:4])
    size = max(64, 1 << (n + 4 - 1).bit_length()) if version == 1 else padme(n)
    if len(p) != size or 4 + n > len(p) or any(p[4 + n:]):
        raise AuthError("bad padding")
    return p[4:4 + n]


def open_record(key, fields, env):
    """SPEC 3-5: a record envelope of version 0x01 or 0x02; the version
    byte is also the first AD field."""
    version = env[0] if env else 0
    if version not in (1, 2) or len(env) < 41:
        raise AuthError("bad envelope")
    a = ad(bytes([version]), *fields)
    try:
        padded = crypto_aead_xchacha20poly1305_ietf_decrypt(env[25:], a, env[1:25], key)
    except Exception as e:  # nacl raises CryptoError
        raise AuthError("envelope failed to open") from e
    return unpad(padded, version)


def derive_kek(passphrase, row):
    m, t, par, salt = row["kdf_memory_kib"], row["kdf_iterations"], row["kdf_parallelism"], row["kdf_salt"]
    if not (1024 <= m <= 4 * 1024 * 1024 and 1 <= t <= 64 and 1 <= par <= 16 and m >= 8 * par):
        raise AuthError("KDF parameters out of range")
    return argon2.low_level.hash_secret_raw(
        passphrase, salt, time_cost=t, memory_cost=m, parallelism=par, hash_len=32,
        type=argon2.low_level.Type.ID, version=19)


def kdf_params(row):
    return b"\x01" + struct.pack(">III", row["kdf_memory_kib"], row["kdf_iterations"], row["kdf_parallelism"])


def identity_ad(vault_id, ident, label=b"ravi/v1/wrap/identity-key"):
    return ad(VERSION, label, vault_id, ub(ident["uuid"]), struct.pack(">I", ident["key_epoch"]),
              ident["name"].encode(), ident["inbox"].encode(), (ident["phone"] or "").encode())


def head_extension(ext):
    """SPEC 4e: empty, or flags (bit 0 slot 1, bit 1 window) and, with a
    window, u32be(E) || u16be(len) || the previous key's envelope."""
    if not ext:
        return None
    flags, rest = ext[0], ext[1:]
    if flags == 0 or flags & ~3:
        raise AuthError("bad head extension")
    if not flags & 2:
        if rest:
            raise AuthError("bad head extension")
        return None
    if len(rest) < 6:
        raise AuthError("bad head extension")
    epoch, n = struct.unpack(">IH", rest[:6])
    if len(rest) != 6 + n:
        raise AuthError("bad head extension")
    return epoch, rest[6:]


def verify_head(vault_id, ident, ik, rows):
    """SPEC 4b and 4e: the identity head's MAC and its commitment to the
    record set; returns the window (previous epoch, sealed key) or None."""
    head = ident["head"]
    if head is None:
        return None
    if len(head) < 76:
        raise AuthError("bad head length")
    hk = hkdf(ik, b"ravi/v1/identity/head-key")
    seq, epoch = struct.unpack(">QI", head[:12])
    commitment, ext = head[12:44], head[44:-32]
    if epoch != ident["key_epoch"]:
        raise AuthError("head epoch")
    mac = hmac.new(hk, b"ravi/v1/head/identity" + vault_id + ub(ident["uuid"]) + head[:8] + head[8:12]
                   + commitment + ext, hashlib.sha256).digest()
    if not hmac.compare_digest(mac, head[-32:]):
        raise AuthError("head MAC")
    window = head_extension(ext)
    if window is not None and window[0] >= epoch:
        raise AuthError("bad head extension")
    # SPEC 4b: buckets by the first 16 bits of the record uuid; a bucket is
    # the XOR of its records' leaves (which bind the head's epoch); 4 levels
    # of 16-way nodes above them, each SHA-256 of its 16 children in order,
    # all-zero when they all are.
    zero = bytes(32)
    level = {}
    for r in rows:
        leaf = hmac.new(hk, b"ravi/v1/head/leaf" + ub(r["uuid"]) + bytes([r["kind"]])
                        + struct.pack(">I", epoch) + hashlib.sha256(r["ciphertext"]).digest(),
                        hashlib.sha256).digest()
        b = int(r["uuid"][:4], 16)
        level[b] = bytes(x ^ y for x, y in zip(level.get(b, zero), leaf))
    for _ in range(4):
        parents = {}
        for p in {i // 16 for i in level}:
            children = [level.get(16 * p + k, zero) for k in range(16)]
            parents[p] = zero if all(c == zero for c in children) else hashlib.sha256(b"".join(children)).digest()
        level = parents
    if level.get(0, zero) != commitment:
        raise AuthError("the records are not the set the head commits to")
    return window


def open_records(db, vault_id, ident, ik):
    """SPEC 2, 4e and 5-6: derive SK and BK (and, in a rotation's window,
    those of the previous key), open every record under the keys of its
    epoch, check its blind index."""
    keys = {ident["key_epoch"]: (hkdf(ik, b"ravi/v1/identity/seal-key"),
                                 hkdf(ik, b"ravi/v1/identity/blind-index-key"))}
    out = []
    rows = db.execute("SELECT * FROM records WHERE identity_uuid = ? ORDER BY uuid", (ident["uuid"],)).fetchall()
    window = verify_head(vault_id, ident, ik, rows)
    if window is not None:
        epoch, sealed = window
        fields = ad(VERSION, b"ravi/v1/wrap/previous-key", vault_id, ub(ident["uuid"]),
                    struct.pack(">I", epoch), struct.pack(">I", ident["key_epoch"]))
        previous = open_envelope(keys[ident["key_epoch"]][0], fields, sealed)
        keys[epoch] = (hkdf(previous, b"ravi/v1/identity/seal-key"),
                       hkdf(previous, b"ravi/v1/identity/blind-index-key"))
    for r in rows:
        if r["key_epoch"] not in keys:
            raise AuthError("a record of another key epoch")
        sk, bk = keys[r["key_epoch"]]
        fields = (b"ravi/v1/record", vault_id, ub(ident["uuid"]), bytes([r["kind"]]),
                  ub(r["uuid"]), struct.pack(">I", r["key_epoch"]))
        body = json.loads(open_record(sk, fields, r["ciphertext"]))
        name = body[KIND_NAME_FIELD[r["kind"]]]
        index = hmac.new(bk, bytes([r["kind"]]) + name.encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(index, r["blind_index"]):
            raise AuthError("blind index mismatch")
        if r["kind"] == 3:
            body["code_at_59"] = totp_code(body, 59)
        out.append({"uuid": r["uuid"], "kind": r["kind"], "body": body, "key_epoch": r["key_epoch"]})
    return out


def totp_code(body, t):
    """RFC 6238 with the standard library, as an independent check."""
    secret = base64.b32decode(body["secret"] + "=" * (-len(body["secret"]) % 8))
    alg = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512, "STEAM": hashlib.sha1}[body["algorithm"]]
    mac = hmac.new(secret, struct.pack(">Q", t // body["period"]), alg).digest()
    off = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[off:off + 4])[0] & 0x7FFFFFFF
    if body["algorithm"] == "STEAM":
        chars = "23456789BCDFGHJKMNPQRTVWXY"
        code = ""
        for _ in range(5):
            code += chars[value % 26]
            value //= 26
        return code
    return str(value % 10 ** body["digits"]).zfill(body["digits"])


def bech32_bytes(text, hrp):
    got_hrp, data = bech32.bech32_decode(text.strip())
    if got_hrp != hrp or data is None:
        raise AuthError("not a %s key" % hrp)
    return bytes(bech32.convertbits(data, 5, 8, False))


def verify(owner, message, signature, what):
    """SPEC 4a: Ed25519 (RFC 8032) over the field encoding."""
    if signature is None or len(signature) != 64:
        raise AuthError("%s is not signed" % what)
    try:
        owner.verify(message, signature)
    except BadSignatureError as e:
        raise AuthError("%s: bad owner signature" % what) from e


def verify_owner_signatures(db, pinned=None):
    """SPEC 4a: header, identities and grants carry the owner's signatures."""
    v = db.execute("SELECT * FROM vault").fetchone()
    vault_id = ub(v["vault_id"])
    pk = v["owner_public_key"]
    if pk is None or len(pk) != 32:
        raise AuthError("the vault has no owner key")
    if pinned is not None and bech32_bytes(pinned, "raviowner") != pk:
        raise AuthError("the owner key is not the pinned one")
    owner = VerifyKey(pk)
    verify(owner, ad(VERSION, b"ravi/v1/sig/header", vault_id, pk, kdf_params(v), v["kdf_salt"],
                     v["inbox_domain"].encode(), v["created_dt"].encode()), v["signature"], "header")
    for i in db.execute("SELECT * FROM identities"):
        verify(owner, ad(VERSION, b"ravi/v1/sig/identity", vault_id, ub(i["uuid"]), i["name"].encode(),
                         i["inbox"].encode(), (i["phone"] or "").encode(), i["created_dt"].encode()),
               i["signature"], "identity " + i["name"])
    # SPEC 4c: the vault head lists exactly the identities and grants stored
    vh = v["vault_head"]
    if vh is None or len(vh) < 8 + 4 + 4 + 64:
        raise AuthError("no vault head")
    body, sig = vh[:-64], vh[-64:]
    verify(owner, ad(VERSION, b"ravi/v1/sig/vault-head", vault_id) + struct.pack(">I", len(body)) + body,
           sig, "vault head")
    pos = 8
    (n,) = struct.unpack(">I", body[pos:pos + 4]); pos += 4
    listed_ids = {}
    for _ in range(n):
        listed_ids[body[pos:pos + 16]] = struct.unpack(">I", body[pos + 16:pos + 20])[0]; pos += 20
    (m,) = struct.unpack(">I", body[pos:pos + 4]); pos += 4
    listed_grants = {}
    for _ in range(m):
        listed_grants[body[pos:pos + 16]] = (body[pos + 16:pos + 32], body[pos + 32:pos + 64],
                                             struct.unpack(">I", body[pos + 64:pos + 68])[0]); pos += 68
    if pos != len(body):
        raise AuthError("vault head length")
    stored_ids = {ub(i["uuid"]): i["key_epoch"] for i in db.execute("SELECT * FROM identities")}
    if stored_ids != listed_ids:
        raise AuthError("the identities are not the set the vault head lists")
    stored_grants = {ub(g["uuid"]): (ub(g["identity_uuid"]), g["recipient"], g["key_epoch"])
                     for g in db.execute("SELECT * FROM grants")}
    if stored_grants != listed_grants:
        raise AuthError("the grants are not the set the vault head lists")
    for g in db.execute("SELECT * FROM grants"):
        verify(owner, ad(VERSION, b"ravi/v1/sig/grant", vault_id, ub(g["uuid"]), ub(g["identity_uuid"]),
                         struct.pack(">I", g["key_epoch"]), g["recipient"], g["ephemeral_public"],
                         g["wrapped_key"], (g["label"] or "").encode(), g["created_dt"].encode()),
               g["signature"], "grant " + g["uuid"])
    return pk


def read_with_passphrase(db, passphrase):
    v = db.execute("SELECT * FROM vault").fetchone()
    vault_id = ub(v["vault_id"])
    kek = derive_kek(passphrase, v)
    rk = open_envelope(kek, ad(VERSION, b"ravi/v1/wrap/root-key", vault_id, kdf_params(v), v["kdf_salt"]),
                       v["wrapped_root_key"])
    # SPEC 2: the owner's signing key seed, wrapped under RK, is the key
    # whose public half the header carries.
    seed = open_envelope(rk, ad(VERSION, b"ravi/v1/wrap/owner-key", vault_id, v["owner_public_key"]),
                         v["wrapped_owner_key"])
    if bytes(SigningKey(seed).verify_key) != v["owner_public_key"]:
        raise AuthError("the owner key does not match its seed")
    result = {}
    for ident in db.execute("SELECT * FROM identities ORDER BY name"):
        ik = open_envelope(rk, identity_ad(vault_id, ident), ident["wrapped_key"])
        result[ident["name"]] = open_records(db, vault_id, ident, ik)
    return result


def read_with_agent_key(db, key_file, name):
    lines = [l.strip() for l in open(key_file) if l.strip() and not l.strip().startswith("#")]
    if len(lines) != 1:
        raise AuthError("agent key file must hold one key")
    a = bech32_bytes(lines[0].lower(), "ravi-agent-secret-key-")
    priv = X25519PrivateKey.from_private_bytes(a)
    pub = priv.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    v = db.execute("SELECT * FROM vault").fetchone()
    vault_id = ub(v["vault_id"])
    ident = db.execute("SELECT * FROM identities WHERE name = ?", (name,)).fetchone()
    g = db.execute("SELECT * FROM grants WHERE identity_uuid = ? AND recipient = ?", (ident["uuid"], pub)).fetchone()
    if g is None or g["key_epoch"] != ident["key_epoch"]:
        raise AuthError("no current grant")
    e = g["ephemeral_public"]
    ss = priv.exchange(X25519PublicKey.from_public_bytes(e))
    if ss == bytes(32):
        raise AuthError("low-order point")
    wk = hkdf(ss, b"ravi/v1/grant/wrap-key", salt=e + pub)
    a_d = ad(VERSION, b"ravi/v1/wrap/grant", vault_id, ub(ident["uuid"]), ub(g["uuid"]),
             struct.pack(">I", ident["key_epoch"]), e, pub,
             ident["name"].encode(), ident["inbox"].encode(), (ident["phone"] or "").encode())
    ik = open_envelope(wk, a_d, g["wrapped_key"])
    return {name: open_records(db, vault_id, ident, ik)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("vault")
    p.add_argument("--passphrase-file")
    p.add_argument("--agent-key-file")
    p.add_argument("--identity")
    p.add_argument("--owner-key")
    args = p.parse_args()
    db = sqlite3.connect("file:%s?mode=ro" % args.vault, uri=True)
    db.row_factory = sqlite3.Row
    if db.execute("PRAGMA user_version").fetchone()[0] not in (3, 4, 5):
        raise SystemExit("unsupported schema version")
    verify_owner_signatures(db, args.owner_key)
    if args.agent_key_file:
        out = read_with_agent_key(db, args.agent_key_file, args.identity)
    else:
        passphrase = open(args.passphrase_file, "rb").read()
        if passphrase.endswith(b"\n"):
            passphrase = passphrase[:-1]
            if passphrase.endswith(b"\r"):
                passphrase = passphrase[:-1]
        out = read_with_passphrase(db, passphrase)
    json.dump(out, sys.stdout, sort_keys=True)


if __name__ == "__main__":
    main()
