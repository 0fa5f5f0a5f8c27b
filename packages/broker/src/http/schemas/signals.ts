import { Type } from '@sinclair/typebox';
import { SIGNAL_LIMITS } from '../../domain/transmitter.js';
import { SET_ERROR_CODES } from '../../signals/set-verify.js';

/**
 * The push delivery's schemas, bound to the broker's limits and SET error codes. The transmitter
 * records' schemas live in `@tether-broker/protocol`.
 */

/** The pushed SET: the compact JWS itself, sent as application/secevent+jwt. */
export const SetBody = Type.String({ minLength: 1, maxLength: SIGNAL_LIMITS.maxBodyBytes });

/** RFC 8935 §2.4: the error answer of a push (not problem+json). */
export const SetErrorBody = Type.Object({
  err: Type.Union([...SET_ERROR_CODES, 'server_error'].map((c) => Type.Literal(c))),
  description: Type.String(),
});
