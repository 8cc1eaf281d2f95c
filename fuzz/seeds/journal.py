#!/usr/bin/env python3
"""Seeds for the journal_replay fuzz target: journals of format 2 written the way the journal
writes them (a segment header with a salt, records framed with their index in the group
commit and a salted CRC32C), whole and damaged the ways a crash damages them (a torn tail, a
lost page inside the last group, a segment whose header never became durable) and the ways
that are corruption (a damaged record of an acknowledged group).

    fuzz/seeds/journal.py fuzz/corpus/journal_replay

The input layout is the target's (fuzz/src/journal_replay.rs): a byte of segment count less
one (low two bits) and seq_min (high six), a byte per segment naming its first seq, a 2-byte
length per segment but the last, then the contents.
"""
import struct
import sys
from pathlib import Path


def crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


TABLE = crc32c_table()


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc = TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def segment_header(first_seq, salt):
    head = b"HFJS" + struct.pack("<IQQI", 2, first_seq, salt, 0)
    return head + struct.pack("<I", crc32c(head))


def record(salt, seq, group_index, body):
    head = b"HFJ2" + struct.pack("<IQ", len(body), seq)
    index = struct.pack("<I", group_index)
    crc = crc32c(body, crc32c(index, crc32c(head, crc32c(struct.pack("<Q", salt)))))
    return head + struct.pack("<I", crc) + index + body


def segment(first_seq, salt, groups):
    """groups: lists of bodies; returns the bytes and the next seq."""
    out = bytearray(segment_header(first_seq, salt))
    seq = first_seq
    for group in groups:
        for i, body in enumerate(group):
            out += record(salt, seq, i, body)
            seq += 1
    return bytes(out), seq


def seed(seq_min, segments):
    assert 1 <= len(segments) <= 4 and seq_min < 64
    head = bytes([(len(segments) - 1) | (seq_min << 2)])
    names = bytes(first for first, _ in segments)
    lens = b"".join(struct.pack("<H", len(c)) for _, c in segments[:-1])
    return head + names + lens + b"".join(c for _, c in segments)


def main(out):
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    salt = 0x5EED5A17
    body = lambda n, k: bytes((n * 31 + i) % 256 for i in range(k))
    one, next_seq = segment(1, salt, [[body(1, 40)], [body(2, 9), body(3, 70), body(4, 1)]])
    seeds = {"whole": seed(0, [(1, one)])}
    seeds["torn-tail"] = seed(0, [(1, one[:-5])])
    # A page of the last group lost in the middle: the record after it still verifies.
    lost = bytearray(one)
    start = 32 + (24 + 40) + (24 + 9)
    lost[start:start + 24] = bytes(24)
    seeds["lost-page-in-last-group"] = seed(0, [(1, bytes(lost))])
    # The same damage in a group before the last: corruption.
    two, _ = segment(1, salt, [[body(1, 40), body(2, 9)], [body(3, 70)]])
    bad = bytearray(two)
    bad[32 + 24 + 40 + 30] ^= 0x10
    seeds["damaged-acknowledged-group"] = seed(0, [(1, bytes(bad))])
    # Two segments, a group split across them, then a torn header of a third.
    first, seq = segment(1, salt, [[body(1, 20), body(2, 20)]])
    second, seq2 = segment(seq, salt, [[body(3, 20)], [body(4, 20), body(5, 20)]])
    seeds["two-segments"] = seed(0, [(1, first), (seq, second)])
    seeds["torn-third-header"] = seed(0, [(1, first), (seq, second), (seq2, segment_header(seq2, salt)[:10])])
    seeds["seq-min"] = seed(5, [(5, segment(5, salt, [[body(5, 3)]])[0])])
    seeds["empty-segment"] = seed(0, [(1, segment_header(1, salt))])
    for name, data in seeds.items():
        (out / f"seed-{name}").write_bytes(data)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fuzz/corpus/journal_replay")
