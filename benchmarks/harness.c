/*
 * The smallest caller of a PKCS#11 module: the baseline the binding overhead is measured
 * against (benchmarks/binding_overhead.py builds it and calls harness_run through ctypes
 * in a process of its own).
 *
 * harness_run loads the module, logs in to the token with the given label, makes an
 * AES-256 key and an RSA-2048 key pair as session objects, then repeats one operation
 * for `seconds` and returns how many it did: 0 = C_Digest(CKM_SHA256) of 1 KiB,
 * 1 = C_Sign(CKM_SHA256_RSA_PKCS) of 1 KiB, 2 = C_Encrypt(CKM_AES_CBC_PAD) of 1 KiB.
 * Each repetition is the Init and the one-shot call, as python-pkcs11 does it.
 * A negative return is a CK_RV (negated) or -1 for a load error.
 */
#include <dlfcn.h>
#include <string.h>
#include <time.h>

#include <p11-kit/pkcs11.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

#define CHECK(call) do { CK_RV rv_ = (call); if (rv_ != CKR_OK) return -(long)rv_; } while (0)

__attribute__((visibility("default")))
long harness_run(const char *module, const char *label, const char *pin, int operation,
                 double seconds, double *elapsed)
{
    void *library = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (library == NULL) return -1;
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(library, "C_GetFunctionList");
    CK_FUNCTION_LIST_PTR f;
    if (get == NULL || get(&f) != CKR_OK) return -1;
    CHECK(f->C_Initialize(NULL));

    CK_SLOT_ID slots[64];
    CK_ULONG count = 64, found = (CK_ULONG)-1;
    CHECK(f->C_GetSlotList(CK_TRUE, slots, &count));
    for (CK_ULONG i = 0; i < count; i++) {
        CK_TOKEN_INFO info;
        char padded[32];
        memset(padded, ' ', sizeof padded);
        memcpy(padded, label, strlen(label) < 32 ? strlen(label) : 32);
        if (f->C_GetTokenInfo(slots[i], &info) == CKR_OK
            && memcmp(info.label, padded, 32) == 0)
            found = i;
    }
    if (found == (CK_ULONG)-1) return -1;
    CK_SESSION_HANDLE s;
    CHECK(f->C_OpenSession(slots[found], CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
    CHECK(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin, strlen(pin)));

    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG aes_len = 32, bits = 2048;
    CK_BYTE exponent[] = {1, 0, 1};
    CK_ATTRIBUTE aes_template[] = {{CKA_TOKEN, &no, 1}, {CKA_VALUE_LEN, &aes_len, sizeof aes_len},
                                   {CKA_ENCRYPT, &yes, 1}};
    CK_ATTRIBUTE public_template[] = {{CKA_TOKEN, &no, 1}, {CKA_VERIFY, &yes, 1},
                                      {CKA_MODULUS_BITS, &bits, sizeof bits},
                                      {CKA_PUBLIC_EXPONENT, exponent, sizeof exponent}};
    CK_ATTRIBUTE private_template[] = {{CKA_TOKEN, &no, 1}, {CKA_SIGN, &yes, 1}};
    CK_MECHANISM aes_gen = {CKM_AES_KEY_GEN, NULL, 0}, rsa_gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_OBJECT_HANDLE aes, public_key, private_key;
    CHECK(f->C_GenerateKey(s, &aes_gen, aes_template, 3, &aes));
    CHECK(f->C_GenerateKeyPair(s, &rsa_gen, public_template, 4, private_template, 2,
                               &public_key, &private_key));

    CK_BYTE data[1024], out[2048], iv[16] = {0};
    for (size_t i = 0; i < sizeof data; i++) data[i] = (CK_BYTE)i;
    CK_MECHANISM digest = {CKM_SHA256, NULL, 0}, sign = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM cbc = {CKM_AES_CBC_PAD, iv, sizeof iv};
    long done = 0;
    double start = now(), end = start + seconds;
    while (now() < end || done < 3) {
        CK_ULONG length = sizeof out;
        switch (operation) {
        case 0:
            CHECK(f->C_DigestInit(s, &digest));
            CHECK(f->C_Digest(s, data, sizeof data, out, &length));
            break;
        case 1:
            CHECK(f->C_SignInit(s, &sign, private_key));
            CHECK(f->C_Sign(s, data, sizeof data, out, &length));
            break;
        default:
            CHECK(f->C_EncryptInit(s, &cbc, aes));
            CHECK(f->C_Encrypt(s, data, sizeof data, out, &length));
        }
        done++;
    }
    *elapsed = now() - start;
    f->C_Logout(s);
    f->C_CloseSession(s);
    f->C_Finalize(NULL);
    return done;
}
