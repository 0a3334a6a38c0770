/*
 * p11fault: a PKCS#11 module that forwards every call to another module (SoftHSM2 by
 * default) and, on request, breaks exactly one rule of the standard. It is the suite's
 * self-test: each fault is a realistic module bug, and the suite must notice it.
 *
 *   P11_FAULT         the fault to inject (a name from FAULTS below); unset or "none"
 *                     gives a clean forwarder
 *   P11_FAULT_MODULE  the module to forward to (default /usr/lib/softhsm/libsofthsm2.so)
 *
 * The only exported symbol is C_GetFunctionList. It loads the real module, copies its
 * CK_FUNCTION_LIST and replaces the entries this file wraps. The wrappers run in every
 * mode, the clean one included (they then only note which operation each session runs
 * and forward), so a clean run also shows that the wrapping itself changes nothing.
 * Each fault acts only in code guarded by `fault == <ITS NAME>`.
 *
 * An unknown P11_FAULT makes C_GetFunctionList fail, so a misspelt fault never passes
 * for a clean module. Written against p11-kit's pkcs11.h (Debian: libp11-kit-dev).
 */

#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <p11-kit/pkcs11.h>

#define EXPORT __attribute__((visibility("default")))
#define DEFAULT_MODULE "/usr/lib/softhsm/libsofthsm2.so"

/* ---- the faults ------------------------------------------------------------------- */

enum fault {
    NONE,
    INFO_FLAGS_NONZERO,
    SESSION_RO_REPORTED_RW,
    LOGOUT_KEEPS_LOGIN,
    RANDOM_ZEROS,
    DIGEST_SHA256_WRONG_BYTE,
    DIGEST_INIT_RESTARTS_ACTIVE,
    DIGEST_SHORT_BUFFER_TRUNCATES,
    RSA_MODULUS_ONE_BIT_SHORT,
    EC_POINT_NOT_DER,
    GENERATED_KEY_NOT_LOCAL,
    SENSITIVE_TEMPLATE_IGNORED,
    READ_ONLY_CHANGE_ACCEPTED,
    ECDSA_SIGNATURE_DER,
    RSA_PKCS_SIGNATURE_BIT_FLIPPED,
    PSS_SALT_LENGTH_IGNORED,
    VERIFY_ACCEPTS_ANYTHING,
    VERIFY_GENERAL_ERROR,
    GCM_TAG_BEFORE_CIPHERTEXT,
    CBC_PAD_NOT_REMOVED,
    AES_KEY_WRAP_REVERSED,
    MECHANISM_LIST_DROPS_CLAIMED,
    MECHANISM_KEY_SIZE_IN_BITS,
    MECHANISM_INFO_FLAGS_UNSET,
    ADVERTISED_MECHANISM_REFUSED,
    FIND_OBJECTS_EXTRA_HANDLE,
    OPERATION_SURVIVES_ERROR,
    SHORT_BUFFER_ENDS_OPERATION,
    NULL_BUFFER_NO_LENGTH,
    OUTPUT_LENGTH_NARROWED,
    KEY_TYPE_NOT_CHECKED,
    KEY_HANDLE_REPORTED_AS_OBJECT,
    SIGN_ACCEPTS_SINGLE_AFTER_UPDATE,
    FIND_OBJECTS_INIT_RESTARTS_SEARCH,
    DIGEST_NULL_INPUT_CRASHES,
    CTR_COUNTER_BITS_WIDENED,
    RANDOM_CRASHES,
    RANDOM_HANGS,
};

static const struct {
    const char *name;
    enum fault fault;
} FAULTS[] = {
    {"none", NONE},
    /* C_GetInfo: CK_INFO.flags is reserved and must be zero (v2.40 base §3.1); here a
       bit is set. */
    {"info-flags-nonzero", INFO_FLAGS_NONZERO},
    /* C_GetSessionInfo: a read-only session must report CKS_RO_* and no CKF_RW_SESSION
       (§5.6.4); here read-only sessions report the read/write state and flag. */
    {"session-ro-reported-rw", SESSION_RO_REPORTED_RW},
    /* C_Logout: the user must be logged out of every session (§5.6.8); here C_Logout
       returns CKR_OK and does nothing. */
    {"logout-keeps-login", LOGOUT_KEEPS_LOGIN},
    /* C_GenerateRandom: the output must be random (§5.15.2); here it is all zero bytes. */
    {"random-zeros", RANDOM_ZEROS},
    /* C_GenerateRandom: the module must return (a crash takes the caller down with it);
       here it dies with SIGSEGV, as a module with a memory bug would. */
    {"random-crashes", RANDOM_CRASHES},
    /* C_GenerateRandom: the module must return; here it never does (a hung device). */
    {"random-hangs", RANDOM_HANGS},
    /* C_Digest, C_DigestFinal: a digest must equal the algorithm's definition (§5.10);
       here every SHA-256 digest has its last byte altered. No inverse exists, so only an
       independent implementation can tell. */
    {"digest-sha256-wrong-byte", DIGEST_SHA256_WRONG_BYTE},
    /* C_DigestInit: a second initialization while a digest is active must give
       CKR_OPERATION_ACTIVE (§5.10.1); here it silently ends the first digest and starts
       again. */
    {"digest-init-restarts-active", DIGEST_INIT_RESTARTS_ACTIVE},
    /* C_Digest: a too-small output buffer must give CKR_BUFFER_TOO_SMALL with the length
       needed, and leave the digest active (§5.2); here the digest is cut to the buffer and
       CKR_OK returned. */
    {"digest-short-buffer-truncates", DIGEST_SHORT_BUFFER_TRUNCATES},
    /* C_GenerateKeyPair(CKM_RSA_PKCS_KEY_PAIR_GEN): the modulus must have CKA_MODULUS_BITS
       bits (curr §2.1.4); here it is one bit short, while the public key still reports
       the requested CKA_MODULUS_BITS. */
    {"rsa-modulus-one-bit-short", RSA_MODULUS_ONE_BIT_SHORT},
    /* C_GetAttributeValue(CKA_EC_POINT): the point is a DER OCTET STRING (curr §2.3.3);
       here the bare point is returned, without the DER wrapping (a common interop bug). */
    {"ec-point-not-der", EC_POINT_NOT_DER},
    /* C_GetAttributeValue(CKA_LOCAL): a generated key has CKA_LOCAL true (base §4.7);
       here it always reads false. */
    {"generated-key-not-local", GENERATED_KEY_NOT_LOCAL},
    /* C_GenerateKey: CKA_SENSITIVE true in the template must make the key's value
       unreadable (§4.10); here the key is made non-sensitive, while CKA_SENSITIVE and
       CKA_ALWAYS_SENSITIVE still read true, so its value leaks. */
    {"sensitive-template-ignored", SENSITIVE_TEMPLATE_IGNORED},
    /* C_SetAttributeValue: CKA_EXTRACTABLE cannot be set once false, nor CKA_SENSITIVE
       cleared once true: CKR_ATTRIBUTE_READ_ONLY (§4.10, §4.1.2); here such a change
       returns CKR_OK (the key keeps its value: the caller is told the change was made). */
    {"read-only-change-accepted", READ_ONLY_CHANGE_ACCEPTED},
    /* C_Sign/C_Verify(CKM_ECDSA*): the signature is r || s, each nLen bytes (curr ECDSA);
       here signatures are DER-encoded, and C_Verify expects DER too, so the module agrees
       with itself and only an independent implementation can tell. */
    {"ecdsa-signature-der", ECDSA_SIGNATURE_DER},
    /* C_Sign(CKM_RSA_PKCS): the signature is RSASSA-PKCS1-v1_5 of the given data (curr
       PKCS #1 v1.5 RSA); here one bit of it is flipped, so only a verifier outside the
       module (another module, a client, an independent implementation) can tell. */
    {"rsa-pkcs-signature-bit-flipped", RSA_PKCS_SIGNATURE_BIT_FLIPPED},
    /* C_SignInit(PSS mechanisms): the signature uses CK_RSA_PKCS_PSS_PARAMS.sLen (curr
       PKCS #1 RSA PSS); here signing always uses a salt length of 0. */
    {"pss-salt-length-ignored", PSS_SALT_LENGTH_IGNORED},
    /* C_Verify, C_VerifyFinal: an invalid signature must give CKR_SIGNATURE_INVALID or
       CKR_SIGNATURE_LEN_RANGE (§5.12); here every signature is accepted. */
    {"verify-accepts-anything", VERIFY_ACCEPTS_ANYTHING},
    /* C_Verify, C_VerifyFinal: an invalid signature gives CKR_SIGNATURE_INVALID (§5.12.2);
       here it gives CKR_GENERAL_ERROR. */
    {"verify-general-error", VERIFY_GENERAL_ERROR},
    /* C_Encrypt/C_Decrypt(CKM_AES_GCM): the output is the ciphertext followed by the tag
       (curr AES-GCM); here the tag comes first, in both directions, so the module decrypts
       its own output and only an independent implementation can tell. */
    {"gcm-tag-before-ciphertext", GCM_TAG_BEFORE_CIPHERTEXT},
    /* C_Decrypt(CKM_AES_CBC_PAD): decryption removes the PKCS #7 padding (curr AES-CBC with
       PKCS padding); here it is left on the plaintext. */
    {"cbc-pad-not-removed", CBC_PAD_NOT_REMOVED},
    /* C_WrapKey/C_UnwrapKey(CKM_AES_KEY_WRAP): the wrapped key is RFC 3394 (curr §2.14);
       here its bytes are reversed in both directions, so the module unwraps what it
       wrapped and only an independent implementation can tell. */
    {"aes-key-wrap-reversed", AES_KEY_WRAP_REVERSED},
    /* C_GetMechanismList: the list holds every mechanism the token supports (§5.5.5);
       here CKM_AES_CMAC is left out, although it works. */
    {"mechanism-list-drops-claimed", MECHANISM_LIST_DROPS_CLAIMED},
    /* C_GetMechanismInfo: AES key sizes are counted in bytes (curr AES); here they are
       reported in bits. */
    {"mechanism-key-size-in-bits", MECHANISM_KEY_SIZE_IN_BITS},
    /* C_GetMechanismInfo: the module fills the CK_MECHANISM_INFO it is given (§5.5.6);
       here flags is left as the caller's bytes (key sizes are set). */
    {"mechanism-info-flags-unset", MECHANISM_INFO_FLAGS_UNSET},
    /* C_EncryptInit, C_DecryptInit: a listed mechanism whose flags announce them works
       with them (§5.5.5, §5.5.6); here CKM_AES_CTR, still listed with CKF_ENCRYPT and
       CKF_DECRYPT, is refused with CKR_MECHANISM_INVALID. */
    {"advertised-mechanism-refused", ADVERTISED_MECHANISM_REFUSED},
    /* C_FindObjects: the search returns exactly the matching objects (§5.7.7); here one
       more handle is returned at the end of every search. */
    {"find-objects-extra-handle", FIND_OBJECTS_EXTRA_HANDLE},
    /* C_Encrypt/C_Decrypt(CKM_AES_ECB): a call that returns an error other than
       CKR_BUFFER_TOO_SMALL ends the operation (§5.2, §5.8.2, §5.9.2); here input that is
       not a whole number of blocks is refused before the operation is looked at, so the
       operation stays active. */
    {"operation-survives-error", OPERATION_SURVIVES_ERROR},
    /* C_Encrypt, C_Decrypt, C_Digest, C_Sign: CKR_BUFFER_TOO_SMALL leaves the operation
       active (§5.2); here the operation is finished before CKR_BUFFER_TOO_SMALL returns. */
    {"short-buffer-ends-operation", SHORT_BUFFER_ENDS_OPERATION},
    /* C_Encrypt, C_Decrypt, C_Digest, C_Sign, C_WrapKey: a NULL output buffer returns the
       length needed (§5.2); here the length reads 0. */
    {"null-buffer-no-length", NULL_BUFFER_NO_LENGTH},
    /* C_Encrypt, C_Decrypt, C_Digest, C_Sign: an output length above 2^31 - 1 is a large
       buffer (§5.2); here it is read as a negative int, so CKR_BUFFER_TOO_SMALL. */
    {"output-length-narrowed", OUTPUT_LENGTH_NARROWED},
    /* C_EncryptInit, C_DecryptInit: a key of the wrong type for the mechanism gives
       CKR_KEY_TYPE_INCONSISTENT (§5.1.6); here the Init returns CKR_OK. */
    {"key-type-not-checked", KEY_TYPE_NOT_CHECKED},
    /* C_WrapKey: a key handle that names no object gives CKR_KEY_HANDLE_INVALID (§5.13.1);
       here CKR_OBJECT_HANDLE_INVALID, which C_WrapKey does not list. */
    {"key-handle-reported-as-object", KEY_HANDLE_REPORTED_AS_OBJECT},
    /* C_Sign after C_SignUpdate: the single-part call cannot end a multi-part operation
       (§5.11.2, a caller rule SoftHSM2 enforces); here C_Sign takes the data as the last
       part and returns the signature. */
    {"sign-accepts-single-after-update", SIGN_ACCEPTS_SINGLE_AFTER_UPDATE},
    /* C_FindObjectsInit during a search: a strict module refuses with CKR_OPERATION_ACTIVE
       (§5.7.7, §5.1.6); here the first search is ended and a new one started. */
    {"find-objects-init-restarts-search", FIND_OBJECTS_INIT_RESTARTS_SEARCH},
    /* C_Digest: a NULL input with a non-zero length gives CKR_ARGUMENTS_BAD (§5.1.6); here
       the module reads through the NULL pointer and dies. */
    {"digest-null-input-crashes", DIGEST_NULL_INPUT_CRASHES},
    /* C_EncryptInit, C_DecryptInit(CKM_AES_CTR): the counter is ulCounterBits wide, and an
       operation that would wrap it returns CKR_DATA_LEN_RANGE (v2.40 curr, AES with
       Counter); here the counter is taken as 128 bits wide, so it never wraps. */
    {"ctr-counter-bits-widened", CTR_COUNTER_BITS_WIDENED},
};

static enum fault fault = NONE;
static CK_FUNCTION_LIST_PTR real;
static CK_FUNCTION_LIST shim;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- what each session is doing -------------------------------------------------- */

/* Indexed by handle modulo SESSIONS; an entry counts only for the handle stored in it. */
#define SESSIONS 4096

struct session_note {
    CK_SESSION_HANDLE session;
    CK_MECHANISM_TYPE digest, sign, verify, encrypt, decrypt;
    CK_ULONG encrypt_tag, decrypt_tag; /* GCM tag bytes */
    CK_ULONG verify_half;              /* nLen of the ECDSA verification key, 0 unknown */
    int searching;                     /* a search whose extra handle is still due */
    CK_OBJECT_HANDLE last_found;
    int sign_updated;                  /* C_SignUpdate in the active signing */
};

static struct session_note sessions[SESSIONS];

#define NO_MECHANISM ((CK_MECHANISM_TYPE)-1)

/* A copy of the note of `session` (all mechanisms NO_MECHANISM when there is none). */
static struct session_note note_of(CK_SESSION_HANDLE session)
{
    struct session_note copy;
    pthread_mutex_lock(&lock);
    copy = sessions[session % SESSIONS];
    pthread_mutex_unlock(&lock);
    if (copy.session != session) {
        memset(&copy, 0, sizeof copy);
        copy.session = session;
        copy.digest = copy.sign = copy.verify = copy.encrypt = copy.decrypt = NO_MECHANISM;
    }
    return copy;
}

/* The note of `session`, claimed for it; call with the lock held. */
static struct session_note *claim(CK_SESSION_HANDLE session)
{
    struct session_note *note = &sessions[session % SESSIONS];
    if (note->session != session) {
        memset(note, 0, sizeof *note);
        note->session = session;
        note->digest = note->sign = note->verify = note->encrypt = note->decrypt =
            NO_MECHANISM;
    }
    return note;
}

/* ---- what is known about some objects -------------------------------------------- */

enum object_kind { LIES_SENSITIVE = 1, LIES_MODULUS_BITS };

#define OBJECTS 4096

static struct {
    CK_OBJECT_HANDLE object;
    enum object_kind kind;
    CK_ULONG reported;
} objects[OBJECTS];
static size_t objects_noted;

static void note_object(CK_OBJECT_HANDLE object, enum object_kind kind, CK_ULONG reported)
{
    pthread_mutex_lock(&lock);
    size_t at = objects_noted++ % OBJECTS;
    objects[at].object = object;
    objects[at].kind = kind;
    objects[at].reported = reported;
    pthread_mutex_unlock(&lock);
}

/* Whether `object` was noted as `kind` (the newest note wins); its value in *reported. */
static int object_noted(CK_OBJECT_HANDLE object, enum object_kind kind, CK_ULONG *reported)
{
    int found = 0;
    pthread_mutex_lock(&lock);
    size_t total = objects_noted < OBJECTS ? objects_noted : OBJECTS;
    for (size_t i = 0; i < total && !found; i++) {
        size_t at = (objects_noted - 1 - i) % OBJECTS;
        if (objects[at].object == object && objects[at].kind == kind) {
            found = 1;
            if (reported)
                *reported = objects[at].reported;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

/* ---- small helpers ---------------------------------------------------------------- */

static CK_ATTRIBUTE_PTR attribute(CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_ATTRIBUTE_TYPE type)
{
    for (CK_ULONG i = 0; tmpl && i < n; i++)
        if (tmpl[i].type == type)
            return &tmpl[i];
    return NULL_PTR;
}

static int is_bool(CK_ATTRIBUTE_PTR attr, CK_BBOOL wanted)
{
    return attr && attr->pValue && attr->ulValueLen == sizeof(CK_BBOOL) &&
           (*(CK_BBOOL *)attr->pValue != CK_FALSE) == (wanted != CK_FALSE);
}

static int is_ecdsa(CK_MECHANISM_TYPE mechanism)
{
    switch (mechanism) {
    case CKM_ECDSA:
    case CKM_ECDSA_SHA1:
    case CKM_ECDSA_SHA224:
    case CKM_ECDSA_SHA256:
    case CKM_ECDSA_SHA384:
    case CKM_ECDSA_SHA512:
        return 1;
    default:
        return 0;
    }
}

static int is_pss(CK_MECHANISM_TYPE mechanism)
{
    switch (mechanism) {
    case CKM_RSA_PKCS_PSS:
    case CKM_SHA1_RSA_PKCS_PSS:
    case CKM_SHA224_RSA_PKCS_PSS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_SHA512_RSA_PKCS_PSS:
        return 1;
    default:
        return 0;
    }
}

/* Mechanisms whose section counts key sizes in bytes (curr, AES). */
static int counts_aes_bytes(CK_MECHANISM_TYPE mechanism)
{
    switch (mechanism) {
    case CKM_AES_KEY_GEN:
    case CKM_AES_ECB:
    case CKM_AES_CBC:
    case CKM_AES_CBC_PAD:
    case CKM_AES_CMAC:
    case CKM_AES_CMAC_GENERAL:
        return 1;
    default:
        return 0;
    }
}

/* The GCM tag length in bytes of a CKM_AES_GCM mechanism, 0 for any other. Both
   CK_GCM_PARAMS layouts are read: v2.40 errata (with ulIvBits) and v2.40 (without). */
static CK_ULONG gcm_tag_bytes(CK_MECHANISM_PTR mechanism)
{
    if (!mechanism || mechanism->mechanism != CKM_AES_GCM || !mechanism->pParameter)
        return 0;
    if (mechanism->ulParameterLen == sizeof(CK_GCM_PARAMS))
        return ((CK_GCM_PARAMS *)mechanism->pParameter)->ulTagBits / 8;
    if (mechanism->ulParameterLen == sizeof(CK_GCM_PARAMS) - sizeof(CK_ULONG))
        return ((CK_ULONG *)mechanism->pParameter)[4] / 8;
    return 0;
}

static void reverse(CK_BYTE_PTR data, CK_ULONG len)
{
    for (CK_ULONG i = 0; i < len / 2; i++) {
        CK_BYTE byte = data[i];
        data[i] = data[len - 1 - i];
        data[len - 1 - i] = byte;
    }
}

/* ---- DER for ECDSA signatures ------------------------------------------------------ */

/* Extra bytes DER may need over r || s: SEQUENCE header (3) and two INTEGER headers with
   a sign byte each (2 x 3). */
#define DER_OVERHEAD 9

static size_t der_integer(CK_BYTE_PTR out, const CK_BYTE *magnitude, size_t len)
{
    while (len > 1 && magnitude[0] == 0) {
        magnitude++;
        len--;
    }
    size_t sign = (magnitude[0] & 0x80) ? 1 : 0;
    out[0] = 0x02;
    out[1] = (CK_BYTE)(len + sign);
    out[2] = 0;
    memcpy(out + 2 + sign, magnitude, len);
    return 2 + sign + len;
}

/* SEQUENCE { INTEGER r, INTEGER s } of r || s (len bytes, r and s len / 2 each). */
static size_t der_signature(CK_BYTE_PTR out, const CK_BYTE *rs, size_t len)
{
    CK_BYTE body[2 * (3 + 128)];
    size_t half = len / 2;
    size_t body_len = der_integer(body, rs, half);
    body_len += der_integer(body + body_len, rs + half, half);
    size_t header = body_len < 0x80 ? 2 : 3;
    out[0] = 0x30;
    if (header == 2) {
        out[1] = (CK_BYTE)body_len;
    } else {
        out[1] = 0x81;
        out[2] = (CK_BYTE)body_len;
    }
    memcpy(out + header, body, body_len);
    return header + body_len;
}

/* r || s (2 x half bytes) from a DER signature; 0 when it is not exactly one. */
static int der_to_rs(const CK_BYTE *der, size_t len, size_t half, CK_BYTE_PTR rs)
{
    size_t at = 2, body;
    if (len < 2 || der[0] != 0x30)
        return 0;
    if (der[1] < 0x80) {
        body = der[1];
    } else if (der[1] == 0x81 && len >= 3) {
        body = der[2];
        at = 3;
    } else {
        return 0;
    }
    if (at + body != len)
        return 0;
    memset(rs, 0, 2 * half);
    for (int i = 0; i < 2; i++) {
        if (at + 2 > len || der[at] != 0x02 || der[at + 1] >= 0x80)
            return 0;
        size_t n = der[at + 1];
        const CK_BYTE *magnitude = der + at + 2;
        if (n == 0 || at + 2 + n > len)
            return 0;
        at += 2 + n;
        while (n > 1 && magnitude[0] == 0) {
            magnitude++;
            n--;
        }
        if (n > half)
            return 0;
        memcpy(rs + i * half + (half - n), magnitude, n);
    }
    return at == len;
}

/* nLen of an EC public key: half the coordinates of its uncompressed CKA_EC_POINT. */
static CK_ULONG ec_half(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key)
{
    CK_BYTE point[300];
    CK_ATTRIBUTE attr = {CKA_EC_POINT, point, sizeof point};
    if (real->C_GetAttributeValue(session, key, &attr, 1) != CKR_OK || attr.ulValueLen < 3)
        return 0;
    CK_ULONG at = 2, inner = point[1];
    if (point[1] == 0x81) {
        at = 3;
        inner = point[2];
    }
    if (point[0] != 0x04 || at + inner != attr.ulValueLen || point[at] != 0x04)
        return 0;
    return (inner - 1) / 2;
}

/* ---- faults of the output-buffer convention ---------------------------------------- */

typedef CK_RV (*output_call)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR,
                             CK_ULONG_PTR);

#define SCRATCH 1024 /* room to finish an operation behind the caller's back */

/* The faults C_Encrypt, C_Decrypt, C_Digest and C_Sign share, around the real `call`:
   1 when the fault answered the call (the answer in *rv), 0 to go on as usual. */
static int output_fault(output_call call, CK_SESSION_HANDLE session, CK_BYTE_PTR data,
                        CK_ULONG data_len, CK_BYTE_PTR out, CK_ULONG_PTR len, CK_RV *rv)
{
    CK_ULONG needed = 0;
    if (!len || (fault != NULL_BUFFER_NO_LENGTH && fault != OUTPUT_LENGTH_NARROWED &&
                 fault != SHORT_BUFFER_ENDS_OPERATION))
        return 0;
    if (fault == NULL_BUFFER_NO_LENGTH) {
        if (out)
            return 0;
        *rv = call(session, data, data_len, NULL_PTR, len);
        if (*rv == CKR_OK)
            *len = 0;
        return 1;
    }
    if (!out || (fault == OUTPUT_LENGTH_NARROWED && *len <= 0x7fffffffUL))
        return 0;
    *rv = call(session, data, data_len, NULL_PTR, &needed);
    if (*rv != CKR_OK)
        return 1;
    if (fault == SHORT_BUFFER_ENDS_OPERATION) {
        if (*len >= needed || needed > SCRATCH)
            return 0;
        CK_BYTE scratch[SCRATCH];
        CK_ULONG room = sizeof scratch;
        call(session, data, data_len, scratch, &room);
    }
    *len = needed;
    *rv = CKR_BUFFER_TOO_SMALL;
    return 1;
}

/* ---- the wrappers ------------------------------------------------------------------ */

static CK_RV w_GetInfo(CK_INFO_PTR info)
{
    CK_RV rv = real->C_GetInfo(info);
    if (fault == INFO_FLAGS_NONZERO && rv == CKR_OK)
        info->flags |= 0x1;
    return rv;
}

static CK_RV w_GetSessionInfo(CK_SESSION_HANDLE session, CK_SESSION_INFO_PTR info)
{
    CK_RV rv = real->C_GetSessionInfo(session, info);
    if (fault == SESSION_RO_REPORTED_RW && rv == CKR_OK) {
        if (info->state == CKS_RO_PUBLIC_SESSION)
            info->state = CKS_RW_PUBLIC_SESSION;
        else if (info->state == CKS_RO_USER_FUNCTIONS)
            info->state = CKS_RW_USER_FUNCTIONS;
        info->flags |= CKF_RW_SESSION;
    }
    return rv;
}

static CK_RV w_Logout(CK_SESSION_HANDLE session)
{
    if (fault == LOGOUT_KEEPS_LOGIN)
        return CKR_OK;
    return real->C_Logout(session);
}

static CK_RV w_GenerateRandom(CK_SESSION_HANDLE session, CK_BYTE_PTR out, CK_ULONG len)
{
    if (fault == RANDOM_CRASHES)
        raise(SIGSEGV);
    while (fault == RANDOM_HANGS)
        pause();
    CK_RV rv = real->C_GenerateRandom(session, out, len);
    if (fault == RANDOM_ZEROS && rv == CKR_OK && out)
        memset(out, 0, len);
    return rv;
}

static CK_RV w_DigestInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism)
{
    CK_RV rv = real->C_DigestInit(session, mechanism);
    if (fault == DIGEST_INIT_RESTARTS_ACTIVE && rv == CKR_OPERATION_ACTIVE) {
        CK_BYTE scratch[128];
        CK_ULONG len = sizeof scratch;
        real->C_DigestFinal(session, scratch, &len);
        rv = real->C_DigestInit(session, mechanism);
    }
    if (rv == CKR_OK && mechanism) {
        pthread_mutex_lock(&lock);
        claim(session)->digest = mechanism->mechanism;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

static void alter_sha256(CK_SESSION_HANDLE session, CK_RV rv, CK_BYTE_PTR out,
                         CK_ULONG_PTR len)
{
    if (fault == DIGEST_SHA256_WRONG_BYTE && rv == CKR_OK && out && len && *len > 0 &&
        note_of(session).digest == CKM_SHA256)
        out[*len - 1] ^= 0x01;
}

static CK_RV w_Digest(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                      CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_RV answered;
    if (fault == DIGEST_NULL_INPUT_CRASHES && !data && data_len)
        raise(SIGSEGV);
    if (output_fault(real->C_Digest, session, data, data_len, out, len, &answered))
        return answered;
    if (fault == DIGEST_SHORT_BUFFER_TRUNCATES && out && len) {
        CK_ULONG needed = 0;
        CK_RV rv = real->C_Digest(session, data, data_len, NULL_PTR, &needed);
        if (rv == CKR_OK && *len < needed && needed <= 128) {
            CK_BYTE whole[128];
            rv = real->C_Digest(session, data, data_len, whole, &needed);
            if (rv == CKR_OK)
                memcpy(out, whole, *len);
            return rv;
        }
    }
    CK_RV rv = real->C_Digest(session, data, data_len, out, len);
    alter_sha256(session, rv, out, len);
    return rv;
}

static CK_RV w_DigestFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_RV rv = real->C_DigestFinal(session, out, len);
    alter_sha256(session, rv, out, len);
    return rv;
}

static CK_RV w_SignInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                        CK_OBJECT_HANDLE key)
{
    CK_MECHANISM changed;
    CK_RSA_PKCS_PSS_PARAMS pss;
    if (fault == PSS_SALT_LENGTH_IGNORED && mechanism && is_pss(mechanism->mechanism) &&
        mechanism->pParameter && mechanism->ulParameterLen == sizeof pss) {
        memcpy(&pss, mechanism->pParameter, sizeof pss);
        pss.sLen = 0;
        changed = *mechanism;
        changed.pParameter = &pss;
        mechanism = &changed;
    }
    CK_RV rv = real->C_SignInit(session, mechanism, key);
    if (rv == CKR_OK && mechanism) {
        pthread_mutex_lock(&lock);
        claim(session)->sign = mechanism->mechanism;
        claim(session)->sign_updated = 0;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

/* ECDSA-DER: let the real module sign (C_Sign, or C_SignFinal when `final`) into r || s,
   and hand out DER. */
static CK_RV sign_der(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                      int final, CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_ULONG raw_len = 0;
    CK_BYTE rs[2 * 128];
    CK_RV rv = final ? real->C_SignFinal(session, NULL_PTR, &raw_len)
                     : real->C_Sign(session, data, data_len, NULL_PTR, &raw_len);
    if (rv != CKR_OK)
        return rv;
    if (!out) {
        *len = raw_len + DER_OVERHEAD;
        return CKR_OK;
    }
    if (raw_len > sizeof rs)
        return CKR_GENERAL_ERROR;
    rv = final ? real->C_SignFinal(session, rs, &raw_len)
               : real->C_Sign(session, data, data_len, rs, &raw_len);
    if (rv != CKR_OK)
        return rv;
    CK_BYTE der[sizeof rs + DER_OVERHEAD];
    size_t der_len = der_signature(der, rs, raw_len);
    if (*len < der_len) {
        *len = der_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(out, der, der_len);
    *len = der_len;
    return CKR_OK;
}

static CK_RV w_Sign(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                    CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_RV answered;
    if (fault == SIGN_ACCEPTS_SINGLE_AFTER_UPDATE && note_of(session).sign_updated) {
        answered = real->C_SignUpdate(session, data, data_len);
        return answered == CKR_OK ? real->C_SignFinal(session, out, len) : answered;
    }
    if (output_fault(real->C_Sign, session, data, data_len, out, len, &answered))
        return answered;
    if (fault == ECDSA_SIGNATURE_DER && len && is_ecdsa(note_of(session).sign))
        return sign_der(session, data, data_len, 0, out, len);
    CK_MECHANISM_TYPE mechanism = note_of(session).sign;
    CK_RV rv = real->C_Sign(session, data, data_len, out, len);
    if (fault == RSA_PKCS_SIGNATURE_BIT_FLIPPED && rv == CKR_OK && out && len && *len &&
        mechanism == CKM_RSA_PKCS)
        out[*len / 2] ^= 0x01;
    return rv;
}

static CK_RV w_SignUpdate(CK_SESSION_HANDLE session, CK_BYTE_PTR part, CK_ULONG part_len)
{
    CK_RV rv = real->C_SignUpdate(session, part, part_len);
    if (rv == CKR_OK) {
        pthread_mutex_lock(&lock);
        claim(session)->sign_updated = 1;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

static CK_RV w_SignFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    if (fault == ECDSA_SIGNATURE_DER && len && is_ecdsa(note_of(session).sign))
        return sign_der(session, NULL_PTR, 0, 1, out, len);
    return real->C_SignFinal(session, out, len);
}

static CK_RV w_VerifyInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                          CK_OBJECT_HANDLE key)
{
    CK_RV rv = real->C_VerifyInit(session, mechanism, key);
    if (rv == CKR_OK && mechanism) {
        CK_ULONG half = 0;
        if (fault == ECDSA_SIGNATURE_DER && is_ecdsa(mechanism->mechanism))
            half = ec_half(session, key);
        pthread_mutex_lock(&lock);
        struct session_note *note = claim(session);
        note->verify = mechanism->mechanism;
        note->verify_half = half;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

/* The verification faults that change the outcome. */
static CK_RV verdict(CK_RV rv)
{
    if (fault == VERIFY_ACCEPTS_ANYTHING &&
        (rv == CKR_SIGNATURE_INVALID || rv == CKR_SIGNATURE_LEN_RANGE))
        return CKR_OK;
    if (fault == VERIFY_GENERAL_ERROR && rv == CKR_SIGNATURE_INVALID)
        return CKR_GENERAL_ERROR;
    return rv;
}

/* ECDSA-DER: the signature to forward (r || s from DER) in rs; 0 when it is not DER, and
   the operation is then ended with an all-zero signature. */
static int verify_der(CK_SESSION_HANDLE session, CK_ULONG half, CK_BYTE_PTR data,
                      CK_ULONG data_len, int final, CK_BYTE_PTR sig, CK_ULONG sig_len,
                      CK_BYTE_PTR rs)
{
    if (sig && der_to_rs(sig, sig_len, half, rs))
        return 1;
    memset(rs, 0, 2 * half);
    if (final)
        real->C_VerifyFinal(session, rs, 2 * half);
    else
        real->C_Verify(session, data, data_len, rs, 2 * half);
    return 0;
}

static CK_RV w_Verify(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                      CK_BYTE_PTR sig, CK_ULONG sig_len)
{
    if (fault == ECDSA_SIGNATURE_DER) {
        struct session_note note = note_of(session);
        CK_BYTE rs[2 * 128];
        if (is_ecdsa(note.verify) && note.verify_half && note.verify_half <= 128) {
            if (!verify_der(session, note.verify_half, data, data_len, 0, sig, sig_len, rs))
                return CKR_SIGNATURE_INVALID;
            return real->C_Verify(session, data, data_len, rs, 2 * note.verify_half);
        }
    }
    return verdict(real->C_Verify(session, data, data_len, sig, sig_len));
}

static CK_RV w_VerifyFinal(CK_SESSION_HANDLE session, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
    if (fault == ECDSA_SIGNATURE_DER) {
        struct session_note note = note_of(session);
        CK_BYTE rs[2 * 128];
        if (is_ecdsa(note.verify) && note.verify_half && note.verify_half <= 128) {
            if (!verify_der(session, note.verify_half, NULL_PTR, 0, 1, sig, sig_len, rs))
                return CKR_SIGNATURE_INVALID;
            return real->C_VerifyFinal(session, rs, 2 * note.verify_half);
        }
    }
    return verdict(real->C_VerifyFinal(session, sig, sig_len));
}

static int refused_though_listed(CK_MECHANISM_PTR mechanism)
{
    return fault == ADVERTISED_MECHANISM_REFUSED && mechanism &&
           mechanism->mechanism == CKM_AES_CTR;
}

/* The mechanism to forward: for ctr-counter-bits-widened, CKM_AES_CTR's parameters copied
   into `params` with a 128-bit counter. */
static CK_MECHANISM_PTR counter_widened(CK_MECHANISM_PTR mechanism, CK_MECHANISM *copy,
                                        CK_AES_CTR_PARAMS *params)
{
    if (fault != CTR_COUNTER_BITS_WIDENED || !mechanism ||
        mechanism->mechanism != CKM_AES_CTR || !mechanism->pParameter ||
        mechanism->ulParameterLen != sizeof(CK_AES_CTR_PARAMS))
        return mechanism;
    *params = *(CK_AES_CTR_PARAMS *)mechanism->pParameter;
    params->ulCounterBits = 128;
    *copy = *mechanism;
    copy->pParameter = params;
    return copy;
}

static CK_RV w_EncryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                           CK_OBJECT_HANDLE key)
{
    if (refused_though_listed(mechanism))
        return CKR_MECHANISM_INVALID;
    CK_MECHANISM widened;
    CK_AES_CTR_PARAMS counter;
    CK_RV rv = real->C_EncryptInit(session, counter_widened(mechanism, &widened, &counter),
                                   key);
    if (fault == KEY_TYPE_NOT_CHECKED && rv == CKR_KEY_TYPE_INCONSISTENT)
        rv = CKR_OK;
    if (rv == CKR_OK && mechanism) {
        pthread_mutex_lock(&lock);
        struct session_note *note = claim(session);
        note->encrypt = mechanism->mechanism;
        note->encrypt_tag = gcm_tag_bytes(mechanism);
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

/* Single-part only: C_EncryptUpdate/C_DecryptUpdate of GCM are forwarded unchanged. */
static CK_RV w_Encrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                       CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_RV answered;
    if (fault == OPERATION_SURVIVES_ERROR && note_of(session).encrypt == CKM_AES_ECB &&
        data_len % 16)
        return CKR_DATA_LEN_RANGE;
    if (output_fault(real->C_Encrypt, session, data, data_len, out, len, &answered))
        return answered;
    CK_RV rv = real->C_Encrypt(session, data, data_len, out, len);
    if (fault == GCM_TAG_BEFORE_CIPHERTEXT && rv == CKR_OK && out && len) {
        struct session_note note = note_of(session);
        CK_ULONG tag = note.encrypt_tag;
        if (note.encrypt == CKM_AES_GCM && tag > 0 && tag <= 16 && *len >= tag) {
            CK_BYTE saved[16];
            memcpy(saved, out + *len - tag, tag);
            memmove(out + tag, out, *len - tag);
            memcpy(out, saved, tag);
        }
    }
    return rv;
}

static CK_RV w_DecryptInit(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                           CK_OBJECT_HANDLE key)
{
    if (refused_though_listed(mechanism))
        return CKR_MECHANISM_INVALID;
    CK_MECHANISM asked;
    CK_AES_CTR_PARAMS counter;
    CK_MECHANISM_PTR forwarded = counter_widened(mechanism, &asked, &counter);
    if (fault == CBC_PAD_NOT_REMOVED && mechanism && mechanism->mechanism == CKM_AES_CBC_PAD) {
        asked = *mechanism;
        asked.mechanism = CKM_AES_CBC;
        forwarded = &asked;
    }
    CK_RV rv = real->C_DecryptInit(session, forwarded, key);
    if (fault == KEY_TYPE_NOT_CHECKED && rv == CKR_KEY_TYPE_INCONSISTENT)
        rv = CKR_OK;
    if (rv == CKR_OK && mechanism) {
        pthread_mutex_lock(&lock);
        struct session_note *note = claim(session);
        note->decrypt = mechanism->mechanism;
        note->decrypt_tag = gcm_tag_bytes(mechanism);
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

static CK_RV w_Decrypt(CK_SESSION_HANDLE session, CK_BYTE_PTR data, CK_ULONG data_len,
                       CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_RV answered;
    if (fault == OPERATION_SURVIVES_ERROR && note_of(session).decrypt == CKM_AES_ECB &&
        data_len % 16)
        return CKR_ENCRYPTED_DATA_LEN_RANGE;
    if (output_fault(real->C_Decrypt, session, data, data_len, out, len, &answered))
        return answered;
    if (fault == GCM_TAG_BEFORE_CIPHERTEXT && data) {
        struct session_note note = note_of(session);
        CK_ULONG tag = note.decrypt_tag;
        if (note.decrypt == CKM_AES_GCM && tag > 0 && data_len >= tag) {
            CK_BYTE_PTR usual = malloc(data_len);
            if (!usual)
                return CKR_HOST_MEMORY;
            memcpy(usual, data + tag, data_len - tag);
            memcpy(usual + data_len - tag, data, tag);
            CK_RV rv = real->C_Decrypt(session, usual, data_len, out, len);
            free(usual);
            return rv;
        }
    }
    return real->C_Decrypt(session, data, data_len, out, len);
}

static CK_RV w_WrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                       CK_OBJECT_HANDLE wrapping_key, CK_OBJECT_HANDLE key,
                       CK_BYTE_PTR out, CK_ULONG_PTR len)
{
    CK_RV rv = real->C_WrapKey(session, mechanism, wrapping_key, key, out, len);
    if (fault == NULL_BUFFER_NO_LENGTH && rv == CKR_OK && !out && len)
        *len = 0;
    if (fault == KEY_HANDLE_REPORTED_AS_OBJECT && rv == CKR_KEY_HANDLE_INVALID)
        rv = CKR_OBJECT_HANDLE_INVALID;
    if (fault == AES_KEY_WRAP_REVERSED && rv == CKR_OK && out && len && mechanism &&
        mechanism->mechanism == CKM_AES_KEY_WRAP)
        reverse(out, *len);
    return rv;
}

static CK_RV w_UnwrapKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                         CK_OBJECT_HANDLE unwrapping_key, CK_BYTE_PTR wrapped,
                         CK_ULONG wrapped_len, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
                         CK_OBJECT_HANDLE_PTR key)
{
    if (fault == AES_KEY_WRAP_REVERSED && mechanism && mechanism->mechanism == CKM_AES_KEY_WRAP &&
        wrapped && wrapped_len > 0) {
        CK_BYTE_PTR usual = malloc(wrapped_len);
        if (!usual)
            return CKR_HOST_MEMORY;
        memcpy(usual, wrapped, wrapped_len);
        reverse(usual, wrapped_len);
        CK_RV rv = real->C_UnwrapKey(session, mechanism, unwrapping_key, usual, wrapped_len,
                                     tmpl, n, key);
        free(usual);
        return rv;
    }
    return real->C_UnwrapKey(session, mechanism, unwrapping_key, wrapped, wrapped_len, tmpl,
                             n, key);
}

static CK_RV w_GenerateKey(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                           CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR key)
{
    CK_ATTRIBUTE_PTR sensitive = attribute(tmpl, n, CKA_SENSITIVE);
    if (fault == SENSITIVE_TEMPLATE_IGNORED && is_bool(sensitive, CK_TRUE)) {
        static const CK_BBOOL no = CK_FALSE;
        CK_ATTRIBUTE_PTR changed = malloc(n * sizeof *changed);
        if (!changed)
            return CKR_HOST_MEMORY;
        memcpy(changed, tmpl, n * sizeof *changed);
        changed[sensitive - tmpl].pValue = (CK_VOID_PTR)&no;
        CK_RV rv = real->C_GenerateKey(session, mechanism, changed, n, key);
        free(changed);
        if (rv == CKR_OK && key)
            note_object(*key, LIES_SENSITIVE, 0);
        return rv;
    }
    return real->C_GenerateKey(session, mechanism, tmpl, n, key);
}

static CK_RV w_GenerateKeyPair(CK_SESSION_HANDLE session, CK_MECHANISM_PTR mechanism,
                               CK_ATTRIBUTE_PTR public_tmpl, CK_ULONG public_n,
                               CK_ATTRIBUTE_PTR private_tmpl, CK_ULONG private_n,
                               CK_OBJECT_HANDLE_PTR public_key,
                               CK_OBJECT_HANDLE_PTR private_key)
{
    CK_ATTRIBUTE_PTR bits = attribute(public_tmpl, public_n, CKA_MODULUS_BITS);
    if (fault == RSA_MODULUS_ONE_BIT_SHORT && mechanism &&
        mechanism->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN && bits && bits->pValue &&
        bits->ulValueLen == sizeof(CK_ULONG)) {
        CK_ULONG asked = *(CK_ULONG *)bits->pValue, short_by_one = asked - 1;
        CK_ATTRIBUTE_PTR changed = malloc(public_n * sizeof *changed);
        if (!changed)
            return CKR_HOST_MEMORY;
        memcpy(changed, public_tmpl, public_n * sizeof *changed);
        changed[bits - public_tmpl].pValue = &short_by_one;
        CK_RV rv = real->C_GenerateKeyPair(session, mechanism, changed, public_n,
                                           private_tmpl, private_n, public_key, private_key);
        free(changed);
        if (rv == CKR_OK && public_key)
            note_object(*public_key, LIES_MODULUS_BITS, asked);
        return rv;
    }
    return real->C_GenerateKeyPair(session, mechanism, public_tmpl, public_n, private_tmpl,
                                   private_n, public_key, private_key);
}

/* EC-POINT-NOT-DER: the attribute `point` of the caller's template, answered with the
   bare point (the contents of the DER OCTET STRING). Returns the code that the attribute
   adds to the call's (CKR_OK or CKR_BUFFER_TOO_SMALL). */
static CK_RV bare_ec_point(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                           CK_ATTRIBUTE_PTR point)
{
    CK_BYTE der[300];
    CK_ATTRIBUTE whole = {CKA_EC_POINT, der, sizeof der};
    if (real->C_GetAttributeValue(session, object, &whole, 1) != CKR_OK || whole.ulValueLen < 3)
        return CKR_OK; /* left as the real call answered it */
    CK_ULONG at = der[1] == 0x81 ? 3 : 2;
    CK_ULONG inner = der[1] == 0x81 ? der[2] : der[1];
    if (der[0] != 0x04 || at + inner != whole.ulValueLen)
        return CKR_OK;
    if (!point->pValue) {
        point->ulValueLen = inner;
        return CKR_OK;
    }
    if (point->ulValueLen < inner) {
        point->ulValueLen = CK_UNAVAILABLE_INFORMATION;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(point->pValue, der + at, inner);
    point->ulValueLen = inner;
    return CKR_OK;
}

static CK_RV w_GetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                                 CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    CK_ATTRIBUTE_PTR point = attribute(tmpl, n, CKA_EC_POINT);
    if (fault == EC_POINT_NOT_DER && point) {
        /* The real call sees a length query for CKA_EC_POINT, then it is answered here. */
        CK_VOID_PTR buffer = point->pValue;
        CK_ULONG size = point->ulValueLen;
        point->pValue = NULL_PTR;
        CK_RV rv = real->C_GetAttributeValue(session, object, tmpl, n);
        point->pValue = buffer;
        if (point->ulValueLen == CK_UNAVAILABLE_INFORMATION)
            return rv;
        point->ulValueLen = size;
        CK_RV extra = bare_ec_point(session, object, point);
        return rv == CKR_OK ? extra : rv;
    }
    CK_RV rv = real->C_GetAttributeValue(session, object, tmpl, n);
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_SENSITIVE && rv != CKR_ATTRIBUTE_TYPE_INVALID &&
        rv != CKR_BUFFER_TOO_SMALL)
        return rv;
    for (CK_ULONG i = 0; tmpl && i < n; i++) {
        CK_ATTRIBUTE_PTR attr = &tmpl[i];
        if (!attr->pValue || attr->ulValueLen == CK_UNAVAILABLE_INFORMATION)
            continue;
        if (fault == GENERATED_KEY_NOT_LOCAL && attr->type == CKA_LOCAL &&
            attr->ulValueLen == sizeof(CK_BBOOL))
            *(CK_BBOOL *)attr->pValue = CK_FALSE;
        if (fault == SENSITIVE_TEMPLATE_IGNORED &&
            (attr->type == CKA_SENSITIVE || attr->type == CKA_ALWAYS_SENSITIVE) &&
            attr->ulValueLen == sizeof(CK_BBOOL) && object_noted(object, LIES_SENSITIVE, NULL))
            *(CK_BBOOL *)attr->pValue = CK_TRUE;
        CK_ULONG asked;
        if (fault == RSA_MODULUS_ONE_BIT_SHORT && attr->type == CKA_MODULUS_BITS &&
            attr->ulValueLen == sizeof(CK_ULONG) &&
            object_noted(object, LIES_MODULUS_BITS, &asked))
            *(CK_ULONG *)attr->pValue = asked;
    }
    return rv;
}

static CK_RV w_SetAttributeValue(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE object,
                                 CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    CK_RV rv = real->C_SetAttributeValue(session, object, tmpl, n);
    if (fault == READ_ONLY_CHANGE_ACCEPTED && rv == CKR_ATTRIBUTE_READ_ONLY &&
        (is_bool(attribute(tmpl, n, CKA_EXTRACTABLE), CK_TRUE) ||
         is_bool(attribute(tmpl, n, CKA_SENSITIVE), CK_FALSE)))
        return CKR_OK;
    return rv;
}

static CK_RV w_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list,
                                CK_ULONG_PTR len)
{
    if (fault != MECHANISM_LIST_DROPS_CLAIMED || !len)
        return real->C_GetMechanismList(slot, list, len);
    CK_ULONG total = 0;
    CK_RV rv = real->C_GetMechanismList(slot, NULL_PTR, &total);
    if (rv != CKR_OK)
        return rv;
    CK_MECHANISM_TYPE_PTR all = calloc(total + 1, sizeof *all);
    if (!all)
        return CKR_HOST_MEMORY;
    rv = real->C_GetMechanismList(slot, all, &total);
    CK_ULONG kept = 0;
    for (CK_ULONG i = 0; rv == CKR_OK && i < total; i++)
        if (all[i] != CKM_AES_CMAC)
            all[kept++] = all[i];
    if (rv == CKR_OK) {
        if (list && *len < kept)
            rv = CKR_BUFFER_TOO_SMALL;
        else if (list)
            memcpy(list, all, kept * sizeof *all);
        *len = kept;
    }
    free(all);
    return rv;
}

static CK_RV w_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type,
                                CK_MECHANISM_INFO_PTR info)
{
    if (fault == MECHANISM_INFO_FLAGS_UNSET && info) {
        CK_MECHANISM_INFO answer;
        memset(&answer, 0, sizeof answer);
        CK_RV rv = real->C_GetMechanismInfo(slot, type, &answer);
        if (rv == CKR_OK) {
            info->ulMinKeySize = answer.ulMinKeySize;
            info->ulMaxKeySize = answer.ulMaxKeySize;
        }
        return rv;
    }
    CK_RV rv = real->C_GetMechanismInfo(slot, type, info);
    if (fault == MECHANISM_KEY_SIZE_IN_BITS && rv == CKR_OK && counts_aes_bytes(type)) {
        info->ulMinKeySize *= 8;
        info->ulMaxKeySize *= 8;
    }
    return rv;
}

static CK_RV w_FindObjectsInit(CK_SESSION_HANDLE session, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n)
{
    CK_RV rv = real->C_FindObjectsInit(session, tmpl, n);
    if (fault == FIND_OBJECTS_INIT_RESTARTS_SEARCH && rv == CKR_OPERATION_ACTIVE) {
        real->C_FindObjectsFinal(session);
        rv = real->C_FindObjectsInit(session, tmpl, n);
    }
    if (rv == CKR_OK) {
        pthread_mutex_lock(&lock);
        struct session_note *note = claim(session);
        note->searching = 1;
        note->last_found = 0;
        pthread_mutex_unlock(&lock);
    }
    return rv;
}

static CK_RV w_FindObjects(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE_PTR found,
                           CK_ULONG max, CK_ULONG_PTR n)
{
    CK_RV rv = real->C_FindObjects(session, found, max, n);
    if (fault != FIND_OBJECTS_EXTRA_HANDLE || rv != CKR_OK || !found || !n)
        return rv;
    pthread_mutex_lock(&lock);
    struct session_note *note = claim(session);
    if (*n > 0)
        note->last_found = found[*n - 1];
    if (*n < max && note->searching) {
        /* The end of the search: one handle too many, the one after the last found. */
        found[(*n)++] = note->last_found + 1;
        note->searching = 0;
    }
    pthread_mutex_unlock(&lock);
    return rv;
}

/* ---- the entry point -------------------------------------------------------------- */

static CK_RV load(void)
{
    const char *path = getenv("P11_FAULT_MODULE");
    const char *name = getenv("P11_FAULT");
    size_t i;
    if (!name || !*name)
        name = "none";
    for (i = 0; i < sizeof FAULTS / sizeof FAULTS[0]; i++)
        if (strcmp(FAULTS[i].name, name) == 0)
            break;
    if (i == sizeof FAULTS / sizeof FAULTS[0]) {
        fprintf(stderr, "p11fault: unknown P11_FAULT %s\n", name);
        return CKR_GENERAL_ERROR;
    }
    fault = FAULTS[i].fault;
    void *library = dlopen(path && *path ? path : DEFAULT_MODULE, RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        fprintf(stderr, "p11fault: %s\n", dlerror());
        return CKR_GENERAL_ERROR;
    }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    CK_RV rv = get ? get(&real) : CKR_GENERAL_ERROR;
    if (rv != CKR_OK || !real)
        return rv != CKR_OK ? rv : CKR_GENERAL_ERROR;
    shim = *real;
    shim.C_GetFunctionList = C_GetFunctionList;
    shim.C_GetInfo = w_GetInfo;
    shim.C_GetSessionInfo = w_GetSessionInfo;
    shim.C_Logout = w_Logout;
    shim.C_GenerateRandom = w_GenerateRandom;
    shim.C_DigestInit = w_DigestInit;
    shim.C_Digest = w_Digest;
    shim.C_DigestFinal = w_DigestFinal;
    shim.C_SignInit = w_SignInit;
    shim.C_Sign = w_Sign;
    shim.C_SignFinal = w_SignFinal;
    shim.C_SignUpdate = w_SignUpdate;
    shim.C_VerifyInit = w_VerifyInit;
    shim.C_Verify = w_Verify;
    shim.C_VerifyFinal = w_VerifyFinal;
    shim.C_EncryptInit = w_EncryptInit;
    shim.C_Encrypt = w_Encrypt;
    shim.C_DecryptInit = w_DecryptInit;
    shim.C_Decrypt = w_Decrypt;
    shim.C_WrapKey = w_WrapKey;
    shim.C_UnwrapKey = w_UnwrapKey;
    shim.C_GenerateKey = w_GenerateKey;
    shim.C_GenerateKeyPair = w_GenerateKeyPair;
    shim.C_GetAttributeValue = w_GetAttributeValue;
    shim.C_SetAttributeValue = w_SetAttributeValue;
    shim.C_GetMechanismList = w_GetMechanismList;
    shim.C_GetMechanismInfo = w_GetMechanismInfo;
    shim.C_FindObjectsInit = w_FindObjectsInit;
    shim.C_FindObjects = w_FindObjects;
    return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR list)
{
    static CK_RV loaded = CKR_CRYPTOKI_NOT_INITIALIZED; /* not tried yet */
    if (!list)
        return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&lock);
    if (loaded == CKR_CRYPTOKI_NOT_INITIALIZED)
        loaded = load();
    pthread_mutex_unlock(&lock);
    if (loaded != CKR_OK)
        return loaded;
    *list = &shim;
    return CKR_OK;
}
