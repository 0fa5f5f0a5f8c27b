import { describeEachStore } from '../support/stores.js';
import { tenantIsolationSuite } from './tenant-isolation-suite.js';

describeEachStore('tenant isolation on every route, three tenants both ways', tenantIsolationSuite);
