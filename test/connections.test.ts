import { connectionContract, TRANSPORTS } from "./connection-contract.js";

for (const transport of TRANSPORTS) connectionContract(transport);
