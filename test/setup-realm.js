// jest runs tests in a vm context that lacks Node's Symbol.dispose/asyncDispose polyfill (Node 20
// defines them only in the main context); give the sandbox the same symbols so `using` works.
const outer = require('node:vm').runInThisContext('Symbol');
if (Symbol.dispose === undefined) Object.defineProperty(Symbol, 'dispose', { value: outer.dispose });
if (Symbol.asyncDispose === undefined) Object.defineProperty(Symbol, 'asyncDispose', { value: outer.asyncDispose });
