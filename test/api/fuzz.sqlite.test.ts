import { describeOnSqlite } from '../support/stores.js';
import { fuzzSuite } from './fuzz-suite.js';

describeOnSqlite('API fuzz: malformed input changes nothing', fuzzSuite);
