export { BrokerClient, type BrokerClientOptions, BrokerError } from './broker-client.js';
export { createClientAssertion } from './client-assertion.js';
export { IdentityError, loadIdentity, tetherHome, writeIdentity } from './identity.js';
