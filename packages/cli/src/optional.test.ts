import { describe, expect, it } from 'vitest';
import { CliError, EXIT } from './errors.js';
import { GATEWAY_PACKAGES, loadOptional } from './optional.js';

describe('optional packages', () => {
  it('turns a missing optional package into package_missing, exit 4, naming what to install', async () => {
    const failure = await loadOptional(
      'gateway',
      ['tether-no-such-package'],
      () => import(/* @vite-ignore */ ['tether-no-such-package'][0] as string),
    ).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(CliError);
    expect(failure).toMatchObject({
      code: 'package_missing',
      exitCode: EXIT.missingPackage,
      detail: '`tether gateway` needs tether-no-such-package, which is not installed',
      hint: 'install it beside the CLI: npm install tether-no-such-package',
    });
  });

  it('names the missing one of several, and lists them all in the hint', async () => {
    const notFound = Object.assign(
      new Error("Cannot find package 'prom-client' imported from /x/gateway/metrics.js"),
      { code: 'ERR_MODULE_NOT_FOUND' },
    );
    const failure = await loadOptional('gateway', GATEWAY_PACKAGES, () => Promise.reject(notFound)).catch(
      (err: unknown) => err,
    );
    expect(failure).toMatchObject({ code: 'package_missing' });
    expect((failure as CliError).detail).toContain('needs prom-client');
    expect((failure as CliError).hint).toBe(
      `install it beside the CLI: npm install ${GATEWAY_PACKAGES.join(' ')}`,
    );
  });

  it('leaves other failures as they are', async () => {
    const other = Object.assign(new Error("Cannot find package 'left-pad' imported from /x"), {
      code: 'ERR_MODULE_NOT_FOUND',
    });
    await expect(loadOptional('server', ['@tether-broker/broker'], () => Promise.reject(other))).rejects.toBe(
      other,
    );
  });
});
