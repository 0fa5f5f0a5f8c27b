import type { RequestList, RequestView } from '@tether-broker/protocol/api';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { expireOverdueRequests } from '../../packages/broker/src/core/expire-requests.js';
import { reviewRequest } from '../../packages/broker/src/requests/review-request.js';
import { listAuditRecords } from '../../packages/broker/src/store/repositories/audit.js';
import { startTestBroker, type TestBroker } from '../support/broker.js';
import { refusal } from '../support/refusal.js';
import { type Scenario, setUpScenario } from '../support/scenario.js';
import { describeEachStore } from '../support/stores.js';

describeEachStore('access request lifecycle', (fixture) => {
  let b: TestBroker;
  let s: Scenario;
  afterAll(() => fixture.cleanup());

  async function fresh(approvals = 1, approverCount = 3) {
    b = await startTestBroker(await fixture.open());
    s = await setUpScenario(b, { approvals, approverCount });
  }
  const ask = (extra: Record<string, unknown> = {}) =>
    s.operator.client.call<RequestView>('POST', '/v1/requests', {
      privilege: 'firewall-admin',
      ticket: 'NET-42',
      justification: 'rotate edge rules',
      duration: 1800,
      ...extra,
    });

  describe('with one approval needed', () => {
    beforeEach(() => fresh(1));

    it('approves on the first eligible approval and opens an activation window', async () => {
      const req = await ask();
      expect(req.state).toBe('pending');
      const approved = await s.approvers[0]!.client.call<RequestView>(
        'POST',
        `/v1/requests/${req.id}/approve`,
        { comment: 'ok' },
      );
      expect(approved.state).toBe('approved');
      expect(Date.parse(approved.activation_expires_at!)).toBe(b.clock.now() + 3600_000);
    });

    it('refuses the requester approving their own request, even as a member of the approver group', async () => {
      const req = await ask();
      const err = await refusal(s.operator.client.call('POST', `/v1/requests/${req.id}/approve`));
      expect(err.code).toBe('self_approval_forbidden');
      expect(err.status).toBe(403);
      const after = await s.admin.call<RequestView>('GET', `/v1/requests/${req.id}`);
      expect(after.state).toBe('pending');
      const audit = await listAuditRecords(b.ctx.store, b.tenant.id, { requestId: req.id, limit: 100 });
      expect(audit.some((r) => r.action === 'request.review.approve' && r.outcome === 'refused')).toBe(true);
    });

    it('refuses a reviewer outside the approver list and a reviewer no policy permits', async () => {
      const req = await ask();
      const err = await refusal(s.outsider.client.call('POST', `/v1/requests/${req.id}/approve`));
      expect(err.code).toBe('approver_not_eligible');
      // In the approver list (operators group) but Cedar's approve policy needs "approvers".
      await s.admin.call('DELETE', '/v1/groups/approvers/members/approver-1');
      await s.admin.call('PUT', '/v1/groups/operators/members/approver-1');
      const err2 = await refusal(s.approvers[1]!.client.call('POST', `/v1/requests/${req.id}/approve`));
      expect(err2.code).toBe('approver_not_eligible');
      expect(err2.detail).toMatch(/no policy permits/);
    });

    it('makes one denial final', async () => {
      const req = await ask();
      const denied = await s.approvers[0]!.client.call<RequestView>('POST', `/v1/requests/${req.id}/deny`, {
        comment: 'no change window',
      });
      expect(denied.state).toBe('denied');
      const err = await refusal(s.approvers[1]!.client.call('POST', `/v1/requests/${req.id}/approve`));
      expect(err.code).toBe('request_not_pending');
      const cancel = await refusal(s.operator.client.call('POST', `/v1/requests/${req.id}/cancel`));
      expect(cancel.code).toBe('request_not_pending');
      expect((await s.admin.call<RequestView>('GET', `/v1/requests/${req.id}`)).state).toBe('denied');
    });

    it('expires an unresolved request at its TTL (manual clock), refuses a late review and records the expiry once', async () => {
      const req = await ask();
      b.clock.advance(3600_000 - 1);
      expect((await s.admin.call<RequestView>('GET', `/v1/requests/${req.id}`)).state).toBe('pending');
      b.clock.advance(1);
      expect((await s.admin.call<RequestView>('GET', `/v1/requests/${req.id}`)).state).toBe('expired');
      const err = await refusal(s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`));
      expect(err.code).toBe('request_expired');
      expect(await expireOverdueRequests(b.ctx)).toBe(0); // already written by the refused review
      const listed = await s.admin.call<RequestList>('GET', '/v1/requests?state=expired');
      expect(listed.requests.map((r) => r.id)).toEqual([req.id]);
      const audit = await listAuditRecords(b.ctx.store, b.tenant.id, { requestId: req.id, limit: 100 });
      expect(audit.filter((r) => r.action === 'request.expired')).toHaveLength(1);
    });

    it('has the sweeper expire overdue requests', async () => {
      const a = await ask();
      const c = await ask({ ticket: 'NET-43' });
      b.clock.advance(3600_000);
      expect(await expireOverdueRequests(b.ctx)).toBe(2);
      expect(await expireOverdueRequests(b.ctx)).toBe(0);
      for (const id of [a.id, c.id])
        expect((await s.admin.call<RequestView>('GET', `/v1/requests/${id}`)).state).toBe('expired');
    });

    it('refuses a request without the ticket the privilege needs, or with a malformed one', async () => {
      const { ticket, ...noTicket } = {
        privilege: 'firewall-admin',
        ticket: 'x',
        justification: 'j',
        duration: 600,
      };
      void ticket;
      expect((await refusal(s.operator.client.call('POST', '/v1/requests', noTicket))).code).toBe(
        'ticket_required',
      );
      expect((await refusal(ask({ ticket: 'JIRA-1' }))).code).toBe('ticket_pattern_mismatch');
      expect((await refusal(ask({ ticket: 'NET-42x' }))).code).toBe('ticket_pattern_mismatch');
    });

    it("refuses a request longer than the privilege's max_duration", async () => {
      const err = await refusal(ask({ duration: 7201 }));
      expect(err.code).toBe('duration_exceeds_max');
      expect(err.status).toBe(422);
      expect((await ask({ duration: 7200 })).state).toBe('pending');
    });

    it('refuses a principal that no policy makes eligible, and says why', async () => {
      const err = await refusal(
        s.outsider.client.call('POST', '/v1/requests', {
          privilege: 'firewall-admin',
          ticket: 'NET-1',
          justification: 'x',
        }),
      );
      expect(err.code).toBe('not_eligible');
      expect(err.detail).toMatch(/no policy permits/);
      const requests = await s.admin.call<{ requests: unknown[] }>('GET', '/v1/requests');
      expect(requests.requests).toHaveLength(0);
    });

    it('auto-approves the pipeline inside its business rules, and only there', async () => {
      const auto = await s.pipeline.client.call<RequestView>('POST', '/v1/requests', {
        privilege: 'deploy',
        ticket: 'CHG-7',
        justification: 'release 1.2.3',
        duration: 900,
      });
      expect(auto.state).toBe('approved');
      const tooLong = await s.pipeline.client.call<RequestView>('POST', '/v1/requests', {
        privilege: 'deploy',
        ticket: 'CHG-8',
        justification: 'release 1.2.4',
        duration: 3600,
      });
      expect(tooLong.state).toBe('pending');
      const noTicket = await s.pipeline.client.call<RequestView>('POST', '/v1/requests', {
        privilege: 'deploy',
        justification: 'x',
        duration: 600,
      });
      expect(noTicket.state).toBe('pending');
      const audit = await listAuditRecords(b.ctx.store, b.tenant.id, { requestId: auto.id, limit: 10 });
      const approval = audit.find((r) => r.action === 'request.approved');
      expect(approval?.actor).toBe('policy');
      expect(approval?.policies).toEqual(['pipeline-auto-deploy']);
    });

    it('lets the requester cancel a pending request, and nobody else but an admin', async () => {
      const req = await ask();
      expect((await refusal(s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/cancel`))).code).toBe(
        'forbidden',
      );
      const cancelled = await s.operator.client.call<RequestView>('POST', `/v1/requests/${req.id}/cancel`, {
        reason: 'not needed',
      });
      expect(cancelled.state).toBe('cancelled');
    });
  });

  describe('with two approvals needed', () => {
    beforeEach(() => fresh(2));

    it('needs two distinct approvers and refuses a second review by the same one', async () => {
      const req = await ask();
      const first = await s.approvers[0]!.client.call<RequestView>('POST', `/v1/requests/${req.id}/approve`);
      expect(first.state).toBe('pending');
      const err = await refusal(s.approvers[0]!.client.call('POST', `/v1/requests/${req.id}/approve`));
      expect(err.code).toBe('duplicate_review');
      const second = await s.approvers[1]!.client.call<RequestView>('POST', `/v1/requests/${req.id}/approve`);
      expect(second.state).toBe('approved');
      expect(second.reviews?.map((r) => r.decision)).toEqual(['approve', 'approve']);
    });
  });

  describe('under concurrency', () => {
    beforeEach(() => fresh(1, 50));

    it('50 concurrent approvals make exactly one approved transition and one audit record of it', async () => {
      const req = await ask();
      const results = await Promise.allSettled(
        s.approvers.map((a) => reviewRequest(b.ctx, a.caller, req.id, 'approve', 'race')),
      );
      const won = results.filter((r) => r.status === 'fulfilled' && r.value.transition === 'approved');
      expect(won).toHaveLength(1);
      for (const r of results) {
        if (r.status === 'rejected') expect((r.reason as { code: string }).code).toBe('request_not_pending');
      }
      const audit = await listAuditRecords(b.ctx.store, b.tenant.id, { requestId: req.id, limit: 1000 });
      expect(audit.filter((r) => r.action === 'request.approved')).toHaveLength(1);
      expect(
        audit.filter((r) => r.action === 'request.review.approve' && r.outcome === 'success'),
      ).toHaveLength(1);
      const verify = await s.admin.call<{ ok: boolean }>('GET', '/v1/audit/verify');
      expect(verify.ok).toBe(true);
    });

    it('50 concurrent approvals by the same approver record one review', async () => {
      const req = await ask();
      const approver = s.approvers[0]!;
      const results = await Promise.allSettled(
        Array.from({ length: 50 }, () => reviewRequest(b.ctx, approver.caller, req.id, 'approve', '')),
      );
      expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
      const audit = await listAuditRecords(b.ctx.store, b.tenant.id, { requestId: req.id, limit: 1000 });
      expect(audit.filter((r) => r.action === 'request.approved')).toHaveLength(1);
    });
  });
});
