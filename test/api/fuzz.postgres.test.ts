import { describeOnPostgres } from '../support/stores.js';
import { fuzzSuite } from './fuzz-suite.js';

describeOnPostgres('API fuzz: malformed input changes nothing', fuzzSuite);
