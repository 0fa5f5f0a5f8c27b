import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  assertProposable,
  assertRelationshipUsable,
  narrowRelationship,
  type Relationship,
  relationshipUsableAt,
  sealedContent,
} from './relationship.js';

const NOW = Date.UTC(2026, 11, 7);
const DAY = 24 * 3600_000;

const base: Relationship = {
  id: 'rel_1',
  providerTenantId: 'ten_p',
  customerTenantId: 'ten_c',
  name: 'managed',
  state: 'active',
  providerGroupIds: ['grp_a', 'grp_b'],
  privilegeIds: ['prv_x', 'prv_y'],
  approval: { customer: 1 },
  startsAt: null,
  endsAt: NOW + 30 * DAY,
  proposedBy: 'prn_p',
  proposedAt: NOW - DAY,
  acceptedBy: 'prn_c',
  acceptedAt: NOW - DAY,
  endedBy: null,
  endedAt: null,
  endReason: null,
  updatedAt: NOW - DAY,
};

describe('relationships', () => {
  it('is usable only active, inside its window', () => {
    expect(relationshipUsableAt(base, NOW)).toBe(true);
    expect(relationshipUsableAt({ ...base, state: 'proposed' }, NOW)).toBe(false);
    expect(relationshipUsableAt({ ...base, state: 'ended' }, NOW)).toBe(false);
    expect(relationshipUsableAt({ ...base, startsAt: NOW + 1 }, NOW)).toBe(false);
    expect(relationshipUsableAt(base, base.endsAt)).toBe(false);
    expect(() => assertRelationshipUsable({ ...base, state: 'proposed' }, NOW)).toThrow(/not been accepted/);
  });

  it('refuses proposals that end in the past, last over a year, or name nothing', () => {
    for (const bad of [
      { endsAt: NOW - 1 },
      { endsAt: NOW + 366 * DAY },
      { startsAt: NOW + 2 * DAY, endsAt: NOW + DAY },
      { providerGroupIds: [] },
      { privilegeIds: [] },
      { approval: { customer: 0 } },
      { approval: { customer: 6 } },
      { approval: { customer: 0, provider: 0 } },
      { approval: { customer: 1, provider: 6, providerApproverGroupIds: ['grp_l'] } },
      { approval: { customer: 0, provider: 1 } },
      { approval: { customer: 1, provider: 0, providerApproverGroupIds: ['grp_l'] } },
      { approval: { customer: 1, provider: 1.5, providerApproverGroupIds: ['grp_l'] } },
    ])
      expect(() => assertProposable({ ...base, ...bad }, NOW)).toThrow(
        expect.objectContaining({ code: 'invalid_relationship' }),
      );
    expect(() => assertProposable(base, NOW)).not.toThrow();
    // N of M per side: the provider's alone, or both.
    for (const approval of [
      { customer: 0, provider: 1, providerApproverGroupIds: ['grp_l'] },
      { customer: 2, provider: 2, providerApproverGroupIds: ['grp_l', 'grp_m'] },
    ])
      expect(() => assertProposable({ ...base, approval }, NOW)).not.toThrow();
  });

  it('narrows provider approvals only toward more approvals and fewer approver groups', () => {
    const both = {
      ...base,
      approval: { customer: 1, provider: 1, providerApproverGroupIds: ['grp_l', 'grp_m'] },
    };
    const narrowed = narrowRelationship(
      both,
      { approval: { customer: 1, provider: 2, providerApproverGroupIds: ['grp_l'] } },
      NOW,
    );
    expect(narrowed.approval).toEqual({ customer: 1, provider: 2, providerApproverGroupIds: ['grp_l'] });
    for (const widening of [
      { customer: 1, provider: 0, providerApproverGroupIds: [] },
      { customer: 1, provider: 1, providerApproverGroupIds: ['grp_l', 'grp_x'] },
      { customer: 0, provider: 1, providerApproverGroupIds: ['grp_l'] },
    ])
      expect(() => narrowRelationship(both, { approval: widening }, NOW)).toThrow(
        expect.objectContaining({ code: 'invalid_relationship' }),
      );
    // A relationship that asked nothing of the provider may start asking, naming its approvers.
    expect(
      narrowRelationship(
        base,
        { approval: { customer: 1, provider: 1, providerApproverGroupIds: ['grp_l'] } },
        NOW,
      ).approval,
    ).toEqual({ customer: 1, provider: 1, providerApproverGroupIds: ['grp_l'] });
  });

  it('narrowing never widens: what it keeps is within what was, ends no later, asks no fewer approvals', () => {
    const ids = fc.subarray(['grp_a', 'grp_b', 'grp_c']);
    fc.assert(
      fc.property(
        fc.option(ids, { nil: undefined }),
        fc.option(fc.subarray(['prv_x', 'prv_y', 'prv_z']), { nil: undefined }),
        fc.option(fc.integer({ min: -DAY, max: 60 * DAY }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 7 }), { nil: undefined }),
        (groups, privileges, endOffset, approvals) => {
          const change = {
            providerGroupIds: groups,
            privilegeIds: privileges,
            endsAt: endOffset === undefined ? undefined : NOW + endOffset,
            approval: approvals === undefined ? undefined : { customer: approvals },
          };
          let narrowed: Relationship;
          try {
            narrowed = narrowRelationship(base, change, NOW);
          } catch (err) {
            expect(err).toMatchObject({ code: 'invalid_relationship' });
            return;
          }
          expect(narrowed.providerGroupIds.every((g) => base.providerGroupIds.includes(g))).toBe(true);
          expect(narrowed.privilegeIds.every((p) => base.privilegeIds.includes(p))).toBe(true);
          expect(narrowed.providerGroupIds.length).toBeGreaterThan(0);
          expect(narrowed.privilegeIds.length).toBeGreaterThan(0);
          expect(narrowed.endsAt).toBeLessThanOrEqual(base.endsAt);
          expect(narrowed.endsAt).toBeGreaterThan(NOW);
          expect(narrowed.approval.customer).toBeGreaterThanOrEqual(base.approval.customer);
          expect(narrowed.approval.customer).toBeLessThanOrEqual(5);
        },
      ),
    );
  });

  it('seals what it grants: any change to groups, privileges, state or window changes the sealed content', () => {
    const sealed = sealedContent(base);
    for (const changed of [
      { providerGroupIds: ['grp_a', 'grp_c'] },
      { privilegeIds: ['prv_x'] },
      { state: 'proposed' as const },
      { endsAt: base.endsAt + 1 },
      { startsAt: NOW },
      { approval: { customer: 2 } },
      { approval: { customer: 1, provider: 1, providerApproverGroupIds: ['grp_l'] } },
      { customerTenantId: 'ten_other' },
    ])
      expect(sealedContent({ ...base, ...changed })).not.toBe(sealed);
    const withProvider = {
      ...base,
      approval: { customer: 1, provider: 1, providerApproverGroupIds: ['grp_l'] },
    };
    expect(
      sealedContent({
        ...withProvider,
        approval: { ...withProvider.approval, providerApproverGroupIds: ['grp_m'] },
      }),
    ).not.toBe(sealedContent(withProvider));
    // A relationship from before provider approvals seals as it did then.
    expect(sealed).toContain('"approval":{"customer":1}');
    // Order does not matter.
    expect(sealedContent({ ...base, providerGroupIds: ['grp_b', 'grp_a'] })).toBe(sealed);
  });
});
