// The Vagrant lab: `vagrant validate` for every method, and its provisioning reusing the namespace lab's real-server
// script (one description of a real server per method).

import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../..', import.meta.url));

function hasVagrant(): boolean {
  return (process.env.PATH ?? '').split(':').some((d) => d !== '' && existsSync(join(d, 'vagrant')));
}

/** Skipped, with the reason, when vagrant is missing; in CI (where bootstrap installs it) missing is a failure. */
function skipUnlessVagrant(): boolean {
  if (hasVagrant()) return false;
  const reason = 'vagrant is not installed (scripts/bootstrap.sh installs Debian\'s vagrant package)';
  const ci = process.env.CI;
  if (ci && ci !== 'false' && ci !== '0') throw new Error(`${reason}, and CI is set: refusing to skip`);
  console.warn(`skipping vagrant validate: ${reason}`);
  return true;
}

const dotfiles = mkdtempSync(join(tmpdir(), 'xdpvs-vagrant-'));
afterAll(() => rmSync(dotfiles, { recursive: true, force: true }));

async function validate(method: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run('vagrant', ['validate', '--ignore-provider', '--no-tty', '--no-color'], {
      cwd: root,
      // No provider is installed here: --ignore-provider validates the Vagrantfile without one. The machine state
      // directory goes to a temporary one instead of the repository's .vagrant/.
      env: { ...process.env, XDPVS_METHOD: method, VAGRANT_DOTFILE_PATH: join(dotfiles, method), VAGRANT_CHECKPOINT_DISABLE: '1' },
      timeout: 60_000,
    });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const x = e as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof x.code === 'number' ? x.code : -1, out: (x.stdout ?? '') + (x.stderr ?? '') };
  }
}

describe.skipIf(skipUnlessVagrant())('vagrant validate', () => {
  it.each(['dr', 'tun', 'nat'])('accepts the Vagrantfile with XDPVS_METHOD=%s (every provisioning script exists)', async (method) => {
    const r = await validate(method);
    expect(r, r.out).toMatchObject({ code: 0 });
    expect(r.out).toContain('Vagrantfile validated successfully.');
    for (const m of ['rs1', 'rs2', 'director1', 'director2', 'client']) expect(r.out).toContain(`==> ${m}:`);
  });

  it('refuses an unknown method with a message naming the choices', async () => {
    const r = await validate('ipip');
    expect(r.code).not.toBe(0);
    expect(r.out).toContain('XDPVS_METHOD must be dr, tun or nat');
  });
});

describe('Vagrant provisioning scripts', () => {
  const scripts = [...readdirSync(join(root, 'scripts/vagrant')).map((f) => `scripts/vagrant/${f}`), 'scripts/lab/realserver-setup.sh'];

  it.each(scripts)('%s parses (bash -n)', async (s) => {
    await expect(run('bash', ['-n', join(root, s)])).resolves.toBeDefined();
  });

  it('configure real servers with the namespace lab\'s own script, which the lab runs too', () => {
    expect(readFileSync(join(root, 'scripts/vagrant/realserver.sh'), 'utf8')).toContain('../lab/realserver-setup.sh');
    expect(readFileSync(join(root, 'scripts/lab/topology.ts'), 'utf8')).toMatch(/setUpRealServer\(rs\.ns, 'dr'/);
    expect(readFileSync(join(root, 'scripts/lab/realserver-setup.ts'), 'utf8')).toContain("'scripts/lab/realserver-setup.sh'");
  });
});
