/**
 * The engine device on a socketpair instead of /dev/fuse (socketFuseDevice): frames in,
 * replies out, byte for byte, and the end of the peer ends the device. This is the seam
 * the request-parser fuzz test drives.
 */
import { closeSync, read, writeSync } from 'node:fs';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { socketFuseDevice } from '../../src/engine/device.js';

const readAsync = promisify(read);

async function readMessage(fd: number): Promise<Buffer> {
  const buf = Buffer.alloc(1 << 16);
  const { bytesRead } = await readAsync(fd, buf, 0, buf.length, null);
  return buf.subarray(0, bytesRead);
}

describe('engine socket device', () => {
  it('delivers each frame whole and writes each reply as one message', async () => {
    const { device, peerFd } = socketFuseDevice();
    const seen: Buffer[] = [];
    device.start((req) => {
      seen.push(Buffer.from(req));
      const unique = req.length >= 16 ? req.readBigUInt64LE(8) : 0n;
      if (req.length >= 16) device.reply(unique, 0, Buffer.from('abc'), Buffer.from('defgh'));
    });
    const frame = Buffer.alloc(48);
    frame.writeUInt32LE(48, 0);
    frame.writeUInt32LE(3, 4);
    frame.writeBigUInt64LE(77n, 8);
    writeSync(peerFd, frame);
    const reply = await readMessage(peerFd);
    expect(reply.readUInt32LE(0)).toBe(16 + 8);
    expect(reply.readInt32LE(4)).toBe(0);
    expect(reply.readBigUInt64LE(8)).toBe(77n);
    expect(reply.subarray(16).toString()).toBe('abcdefgh');
    expect(seen[0]).toEqual(frame);

    // A truncated frame arrives as it was sent: what to make of it is the parser's job.
    writeSync(peerFd, Buffer.from([1, 2, 3]));
    await new Promise<void>((resolve) => {
      const t = setInterval(() => seen.length === 2 && (clearInterval(t), resolve()), 5);
    });
    expect(seen[1]).toEqual(Buffer.from([1, 2, 3]));

    // An error reply carries no body, whatever the caller passed.
    device.reply(78n, -2, Buffer.from('ignored'));
    const err = await readMessage(peerFd);
    expect([err.length, err.readUInt32LE(0), err.readInt32LE(4), err.readBigUInt64LE(8)]).toEqual([16, 16, -2, 78n]);

    closeSync(peerFd);
    await device.closed;
    // After the end, replies are dropped quietly.
    device.reply(79n, 0);
  });

  it('rejects bad arguments synchronously (programming errors)', async () => {
    const { device, peerFd } = socketFuseDevice();
    device.start(() => undefined);
    expect(() => device.reply(1 as unknown as bigint, 0)).toThrow(TypeError);
    expect(() => device.reply(1n, 5)).toThrow(RangeError);
    expect(() => device.reply(1n, 0, 'text' as unknown as Buffer)).toThrow(TypeError);
    await expect(device.notifyInvalEntry(1n, Buffer.from('a/b'))).rejects.toThrow(RangeError);
    closeSync(peerFd);
    await device.closed;
  });
});
